-- A completed workout was deleted (REST), so the user's standing records for its
-- exercises changed under their live workout: replace the live workout's cached
-- base for each of them and walk it again, so that its records, later sets and its
-- completion are judged against what stands now. A baseline loaded before the
-- delete and arriving later is ignored: set scripts only add a base with HSETNX.
-- KEYS 1 the user's live pointer (as workout_active.lua)
-- ARGV 6.. exercise_id, its standing records JSON, exercise_id, ...
-- -> {'ok'} | {'none'}
if not at_live_workout() or not is_open(field('status')) then return {'none'} end
for i = 6, #ARGV, 2 do
  redis.call('HSET', K.base, ARGV[i], ARGV[i + 1])
  rewalk(ARGV[i])
end
return {'ok'}
