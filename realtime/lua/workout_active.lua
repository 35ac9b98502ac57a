-- The user's live workout snapshot in one round trip (session:ready, REST /workouts/active).
-- KEYS 1 the user's live pointer "<prefix>{N}:u:<uid>:live" (the workout's keys are derived from it)
-- -> {'ok', json} | {'none'}
local wid = redis.call('GET', KEYS[1])
if not wid then return {'none'} end
local base = string.sub(KEYS[1], 1, -6) .. ':w:' .. wid
K.state, K.sets, K.order, K.recs = base, base .. ':sets', base .. ':order', base .. ':recs'
WID = wid
if not owned() then return {'none'} end
return {'ok', snapshot_json()}
