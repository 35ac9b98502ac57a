-- workout:start — start the user's live workout; one live workout per user.
-- ARGV 6 fingerprint of the request  7 name (JSON)  8 plan (JSON)  9 room_id (JSON)
-- -> {'ok'|'dup', ack} | {'conflict', message, live workout_id}
local fp = ARGV[6]
if redis.call('EXISTS', K.state) == 1 then
  if owned() then
    local seen = recall('start', fp)
    if seen and seen[1] == 'dup' then return seen end
  end
  return {'conflict', 'this workout_id was already used', WID}
end
local live = redis.call('GET', K.live)
if live then return {'conflict', 'another workout is live (details.workout_id): complete or discard it first', live} end
redis.call('HSET', K.state, 'user_id', UID, 'workout_id', WID, 'status', 'live', 'name', ARGV[7], 'plan', ARGV[8], 'room', ARGV[9],
  'started_at', NOW_S, 'paused_at', '', 'paused_ms', 0, 'seq', 1, 'set_count', 0, 'volume', 0,
  'rpe_sum', 0, 'rpe_n', 0, 'last_at', NOW_S, 'rest_status', '')
redis.call('SET', K.live, WID)
redis.call('ZADD', K.active, NOW_S, K.state)
-- The snapshot in the event is of the workout with it: seq 1.
local _, ack = emit('workout:started', ',"workout":' .. snapshot_json(), 1)
memo('start', fp, ack)
room_activity(ARGV[9], 'workout_started', '{"workout_id":"' .. WID .. '","name":' .. ARGV[7] .. '}')
return {'ok', ack}
