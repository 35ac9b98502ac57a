-- The user's live workout snapshot in one round trip (session:ready, REST /workouts/active).
-- KEYS 1 the user's live pointer "<prefix>{N}:u:<uid>:live" (the workout's keys are derived from it)
-- -> {'ok', json} | {'none'}
if not at_live_workout() then return {'none'} end
return {'ok', snapshot_json()}
