-- Fire every rest timer of one shard that is due: mark it finished and emit its
-- rest:timer `finished`, exactly once. Claiming and firing are one atomic step, so
-- two schedulers polling the same shard can never both fire a timer, and a timer
-- whose process died is fired by whichever process polls next.
-- KEYS 1 the shard's due queue (members are workout state keys)
-- ARGV 3 now (ms)  5 log cap  7 user channel prefix  8 most to fire
-- -> {fired count, ms of the next due timer or -1}
K.due = KEYS[1]
local channel_prefix = ARGV[7]
local fired = 0
local due = redis.call('ZRANGEBYSCORE', K.due, '-inf', NOW_S, 'LIMIT', 0, tonumber(ARGV[8]))
if #due > 0 then redis.call('ZREM', K.due, unpack(due)) end
for _, state in ipairs(due) do
  K.state, K.log = state, state .. ':events'
  local w = redis.call('HMGET', state, 'user_id', 'workout_id', 'rest_status', 'rest_ends_at', 'status',
    'rest_started_at', 'rest_duration_s', 'rest_exercise', 'seq')
  if w[3] == 'running' and is_open(w[5]) then
    if tonumber(w[4]) <= NOW then
      WID, CHANNEL = w[2], channel_prefix .. w[1]
      local seq = w[9] + 1
      redis.call('HSET', state, 'rest_status', 'finished', 'seq', seq)
      emit('rest:timer', ',' .. rest_fields('finished', w[6], w[4], w[7], w[8]) .. ',"server_time":' .. NOW_S, seq)
      fired = fired + 1
    else
      redis.call('ZADD', K.due, w[4], state)  -- moved later meanwhile: not due yet
    end
  end
end
local next_due = redis.call('ZRANGE', K.due, 0, 0, 'WITHSCORES')
return {fired, tonumber(next_due[2]) or -1}
