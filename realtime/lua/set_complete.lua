-- set:complete — log a set; idempotent on set_id.
-- ARGV 6 set_id  7 fingerprint of the request  8 the set (JSON, completed_at filled in)
--      9 exercise_id  10 completed_at
--      11, 12 the exercise's standing and stored records the caller weighed the set against
--      ('' when it has not seen them; 11 '*': walk every set instead)
--      13, 14 what it found (records.py: weigh_last_set): the stored records with the set ('=' when
--      it took none), and the records the set took  [15 the standing records, when the caller had to load them]
-- -> {'ok', ack[, stored records when this walked]} | {'dup', ack} | {'stale', standing records or nil, stored records}
--    | {'not_found'} | {'ended', status} | {'conflict', message}
local set_id, fp, exercise = ARGV[6], ARGV[7], ARGV[9]
if not owned() then return {'not_found'} end
local seen = recall('c:' .. set_id, fp)
if seen then return seen end
local closed = ended(field('status'))
if closed then return closed end
if ARGV[15] then redis.call('HSETNX', K.base, exercise, ARGV[15]) end
-- Weighing a set is the costliest Lua here, and Valkey is the one process all servers
-- share: the caller weighs it, this only checks what it weighed against.
local base = redis.call('HGET', K.base, exercise)
local stored = redis.call('HGET', K.recs, exercise) or ''
local walk_all = ARGV[11] == '*'
if not base or (not walk_all and (base ~= ARGV[11] or stored ~= ARGV[12])) then return {'stale', base, stored} end

local set = cjson.decode(ARGV[8])
redis.call('HSET', K.sets, set_id, ARGV[8])
redis.call('ZADD', K.order, ARGV[10], set_id)
tally(set, 1)
local records, news = ARGV[13], ARGV[14]
if records == '=' then records = stored end
local walked = walk_all or redis.call('ZRANGE', K.order, -1, -1)[1] ~= set_id
if walked then
  records, news = rewalk(exercise, set_id)
elseif records == '' then
  redis.call('HDEL', K.recs, exercise)
elseif records ~= stored then
  redis.call('HSET', K.recs, exercise, records)
end
touch()
local _, ack = emit('set:completed', function()
  return ',"set":' .. ARGV[8] .. ',"stats":' .. stats_json() .. ',"records":[' .. records .. ']'
end)
room_activity('set_completed', '{"workout_id":"' .. WID .. '","set":' .. ARGV[8] .. '}')
if news ~= '' then
  local pr = ',"set_id":"' .. set_id .. '","exercise_id":' .. cjson.encode(exercise) ..
    ',"records":[' .. news .. ']'
  emit('pr:achieved', function() return pr end)
  room_activity('pr_achieved', '{"workout_id":"' .. WID .. '"' .. pr .. '}')
end
memo('c:' .. set_id, fp, ack)
if walked then return {'ok', ack, records} end  -- records the caller has not seen
return {'ok', ack}
