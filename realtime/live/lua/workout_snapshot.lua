-- The live snapshot of a workout (session:ready, REST, sync fallback).
-- -> {'ok', json} | {'not_found'}
if not owned() then return {'not_found'} end
return {'ok', snapshot_json()}
