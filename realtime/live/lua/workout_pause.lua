-- workout:pause — stop the workout's clock; pausing a paused workout repeats the ack.
-- -> {'ok'|'dup', ack} | {'not_found'} | {'ended', status}
if not owned() then return {'not_found'} end
local status = field('status')
if status == 'paused' then return recall('pause', '') or {'conflict', 'the workout is already paused'} end
local closed = ended(status)
if closed then return closed end
redis.call('HSET', K.state, 'status', 'paused', 'paused_at', NOW_S)
redis.call('HDEL', K.ops, 'resume')  -- the next resume is a new one
touch()
local _, ack = emit('workout:paused', ',"at":' .. NOW_S)
memo('pause', '', ack)
return {'ok', ack}
