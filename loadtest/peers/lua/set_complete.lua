-- Log a set in the user's workout and take its next seq, at once; idempotent on set_id.
-- KEYS 1 the workout's hash  2 its sets (set_id -> fingerprint "\n" result)
-- ARGV 1 user id  2 set id  3 fingerprint  4 the set's volume (kg)  5 rpe or ''  6 now (ms)
-- -> {'ok'|'dup', "seq set_count volume rpe_sum rpe_n"} | {'not_found'} | {'conflict'}
if redis.call('HGET', KEYS[1], 'user_id') ~= ARGV[1] then return {'not_found'} end
local prev = redis.call('HGET', KEYS[2], ARGV[2])
if prev then
  local cut = string.find(prev, '\n', 1, true)
  if string.sub(prev, 1, cut - 1) == ARGV[3] then return {'dup', string.sub(prev, cut + 1)} end
  return {'conflict'}
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local count = redis.call('HINCRBY', KEYS[1], 'set_count', 1)
local volume = redis.call('HINCRBYFLOAT', KEYS[1], 'volume', ARGV[4])
local rpe_sum, rpe_n
if ARGV[5] ~= '' then
  rpe_sum = redis.call('HINCRBYFLOAT', KEYS[1], 'rpe_sum', ARGV[5])
  rpe_n = redis.call('HINCRBY', KEYS[1], 'rpe_n', 1)
else
  local r = redis.call('HMGET', KEYS[1], 'rpe_sum', 'rpe_n')
  rpe_sum, rpe_n = r[1], r[2]
end
local result = table.concat({seq, count, volume, rpe_sum, rpe_n}, ' ')
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3] .. '\n' .. result)
return {'ok', result}
