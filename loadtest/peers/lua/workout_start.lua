-- Start the user's live workout (one per user); a repeat with the same content is the same start.
-- KEYS 1 the user's live pointer  2 the workout's hash
-- ARGV 1 user id  2 workout id  3 name (JSON)  4 now (ms)  5 fingerprint of the request
-- -> {'ok'|'dup', started_at} | {'conflict', live workout id}
local live = redis.call('GET', KEYS[1])
if live then
  if live == ARGV[2] and redis.call('HGET', KEYS[2], 'fp') == ARGV[5] then
    return {'dup', redis.call('HGET', KEYS[2], 'started_at')}
  end
  return {'conflict', live}
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'conflict', ARGV[2]} end
redis.call('HSET', KEYS[2], 'user_id', ARGV[1], 'name', ARGV[3], 'started_at', ARGV[4], 'fp', ARGV[5],
  'seq', 1, 'set_count', 0, 'volume', 0, 'rpe_sum', 0, 'rpe_n', 0)
redis.call('SET', KEYS[1], ARGV[2])
return {'ok', ARGV[4]}
