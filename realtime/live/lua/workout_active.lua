-- The user's live workout snapshot in one round trip (session:ready, REST /workouts/active).
-- KEYS 1 the user's live pointer "<prefix>{N}:u:<uid>:live" (the workout's keys are derived from it)
--      2 (session:ready) the user's connections hash (devices_join.lua)
-- ARGV 6 (with KEYS 2) the connection's entry there: a connection a newer one of its device
--        replaced has none, and gets no snapshot
-- -> {'ok', json} | {'none'} | {'gone'}
if KEYS[2] and redis.call('HEXISTS', KEYS[2], ARGV[6]) == 0 then return {'gone'} end
if not at_live_workout() then return {'none'} end
return {'ok', snapshot_json()}
