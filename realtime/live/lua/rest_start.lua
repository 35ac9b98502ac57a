-- rest:start — start (or restart) the workout's rest timer; its end goes into the shard's due queue.
-- ARGV 6 duration in ms  7 duration_s as given (JSON number)  8 exercise_id (JSON or null)
-- -> {'ok', ack} | {'not_found'} | {'ended', status}
-- Like set_complete.lua, one read and one write of the state hash: every set runs this too.
local closed, s = check_open('seq')
if closed then return closed end
local ends_at = int(NOW + ARGV[6])
local seq = s[3] + 1
redis.call('HSET', K.state, 'rest_status', 'running', 'rest_started_at', NOW_S, 'rest_ends_at', ends_at,
  'rest_duration_s', ARGV[7], 'rest_exercise', ARGV[8], 'seq', seq, 'last_at', NOW_S)
redis.call('ZADD', K.due, ends_at, K.state)
local _, ack = emit('rest:timer',
  ',' .. rest_fields('running', NOW_S, ends_at, ARGV[7], ARGV[8]) .. ',"server_time":' .. NOW_S, seq)
return {'ok', ack}
