-- A completed workout was deleted (REST), so the user's standing records for its
-- exercises changed under their live workout: replace the live workout's cached
-- base for each of them and walk it again, so that its records, later sets and its
-- completion are judged against what stands now. A baseline loaded before the
-- delete and arriving later is ignored: set scripts only add a base with HSETNX.
-- KEYS 1 the user's live pointer (as workout_active.lua)
-- ARGV 6.. exercise_id, its standing records JSON, exercise_id, ...
-- -> {'ok'} | {'none'}
local wid = redis.call('GET', KEYS[1])
if not wid then return {'none'} end
local base = string.sub(KEYS[1], 1, -6) .. ':w:' .. wid
K.state, K.sets, K.order, K.base, K.recs = base, base .. ':sets', base .. ':order', base .. ':base', base .. ':recs'
WID = wid
if not owned() or not is_open(field('status')) then return {'none'} end
for i = 6, #ARGV, 2 do
  redis.call('HSET', K.base, ARGV[i], ARGV[i + 1])
  rewalk(ARGV[i], nil)
end
return {'ok'}
