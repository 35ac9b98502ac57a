-- Finish the rest timer once, if it is still the one running, and take the next seq.
-- KEYS 1 the workout's hash   ARGV 1 timer id
-- -> seq, or false when the timer was restarted or already finished
local r = redis.call('HMGET', KEYS[1], 'rest_id', 'rest_status')
if r[1] ~= ARGV[1] or r[2] ~= 'running' then return false end
redis.call('HSET', KEYS[1], 'rest_status', 'finished')
return redis.call('HINCRBY', KEYS[1], 'seq', 1)
