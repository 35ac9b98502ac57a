-- Start (or restart) the workout's rest timer and take the next seq.
-- KEYS 1 the workout's hash
-- ARGV 1 user id  2 timer id  3 started_at  4 ends_at  5 duration_s
-- -> seq, or false when the workout is not this user's
if redis.call('HGET', KEYS[1], 'user_id') ~= ARGV[1] then return false end
redis.call('HSET', KEYS[1], 'rest_id', ARGV[2], 'rest_status', 'running', 'rest_started_at', ARGV[3],
  'rest_ends_at', ARGV[4], 'rest_duration_s', ARGV[5])
return redis.call('HINCRBY', KEYS[1], 'seq', 1)
