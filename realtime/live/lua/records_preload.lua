-- workout:start with a plan: the standing records of the planned exercises, so that the
-- first set of each is weighed at once instead of asking for them (need_base) and
-- waiting on Postgres. They are read after the workout went live, so a REST delete
-- after the read rebases them (records_rebase.lua); HSETNX keeps a base that a set or a
-- rebase put there first, which is as new or newer.
-- ARGV 6.. exercise_id, its standing records JSON, exercise_id, ...
-- -> {'ok'} | {'not_found'} | {'ended', status}
local closed = check_open()
if closed then return closed end
for i = 6, #ARGV, 2 do
  redis.call('HSETNX', K.base, ARGV[i], ARGV[i + 1])
end
return {'ok'}
