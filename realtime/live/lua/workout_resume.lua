-- workout:resume — restart the clock; paused time does not count in the duration.
-- -> {'ok'|'dup', ack} | {'not_found'} | {'conflict', message} | {'ended', status}
if not owned() then return {'not_found'} end
local status = field('status')
if status == 'live' then
  local seen = recall('resume', '')
  if seen then return seen end
  return {'conflict', 'the workout is not paused'}
end
local closed = ended(status)
if closed then return closed end
redis.call('HINCRBY', K.state, 'paused_ms', NOW - tonumber(field('paused_at')))
redis.call('HSET', K.state, 'status', 'live', 'paused_at', '')
touch()
local _, ack = emit('workout:resumed', ',"at":' .. NOW_S)
memo('resume', '', ack)
redis.call('HDEL', K.ops, 'pause')  -- the next pause is a new one
return {'ok', ack}
