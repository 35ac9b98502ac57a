-- set:complete — log a set; idempotent on set_id.
-- ARGV 6 set_id  7 fingerprint of the request  8 the set (JSON, completed_at filled in)
--      9 exercise_id  10 completed_at  [11 exercise_id, 12 its base records JSON, when asked for]
-- -> {'ok'|'dup', ack} | {'need_base', exercise_id} | {'not_found'} | {'ended', status} | {'conflict', message}
local set_id, fp, exercise = ARGV[6], ARGV[7], ARGV[9]
if not owned() then return {'not_found'} end
local seen = recall('c:' .. set_id, fp)
if seen then return seen end
local closed = ended(field('status'))
if closed then return closed end
if ARGV[11] then redis.call('HSETNX', K.base, ARGV[11], ARGV[12]) end
local missing = need_base(exercise)
if missing then return missing end

local set = cjson.decode(ARGV[8])
redis.call('HSET', K.sets, set_id, ARGV[8])
redis.call('ZADD', K.order, ARGV[10], set_id)
tally(set, 1)
local records, news = rewalk(exercise, set_id, set)
touch()
local _, ack = emit('set:completed', function()
  return ',"set":' .. ARGV[8] .. ',"stats":' .. stats_json() .. ',"records":' .. records
end)
room_activity('set_completed', '{"workout_id":"' .. WID .. '","set":' .. ARGV[8] .. '}')
if #news > 0 then
  local pr = ',"set_id":"' .. set_id .. '","exercise_id":' .. cjson.encode(exercise) ..
    ',"records":[' .. table.concat(news, ',') .. ']'
  emit('pr:achieved', function() return pr end)
  room_activity('pr_achieved', '{"workout_id":"' .. WID .. '"' .. pr .. '}')
end
memo('c:' .. set_id, fp, ack)
return {'ok', ack}
