-- rest:skip — stop the running timer; skipping the same timer again repeats the ack.
-- -> {'ok'|'dup', ack} | {'not_found'} | {'ended', status} | {'conflict', message}
local closed = check_open()
if closed then return closed end
local rest_status = field('rest_status')
if rest_status == 'skipped' then return recall('skip', '') or {'conflict', 'no rest timer is running'} end
if rest_status ~= 'running' then return {'conflict', 'no rest timer is running'} end
redis.call('HSET', K.state, 'rest_status', 'skipped')
redis.call('ZREM', K.due, K.state)
touch()
local _, ack = emit('rest:timer', ',' .. rest_json() .. ',"server_time":' .. NOW_S)
memo('skip', '', ack)
return {'ok', ack}
