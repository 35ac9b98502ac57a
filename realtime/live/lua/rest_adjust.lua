-- rest:adjust — move the running timer's end by delta; an end in the past finishes it now.
-- ARGV 6 delta in ms
-- -> {'ok', ack} | {'not_found'} | {'ended', status} | {'conflict', message}
local closed = check_open()
if closed then return closed end
if field('rest_status') ~= 'running' then return {'conflict', 'no rest timer is running'} end
local started_at = tonumber(field('rest_started_at'))
local ends_at = math.max(NOW, tonumber(field('rest_ends_at')) + tonumber(ARGV[6]))
local status = 'running'
if ends_at <= NOW then
  status = 'finished'
  redis.call('ZREM', K.due, K.state)
else
  redis.call('ZADD', K.due, ends_at, K.state)
end
redis.call('HSET', K.state, 'rest_status', status, 'rest_ends_at', ends_at,
  'rest_duration_s', num((ends_at - started_at) / 1000, 3))
touch()
local _, ack = emit('rest:timer', ',' .. rest_json() .. ',"server_time":' .. NOW_S)
return {'ok', ack}
