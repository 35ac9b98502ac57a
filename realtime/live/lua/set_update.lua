-- set:update — change fields of a logged set; the same change repeated is acked once.
-- ARGV 6 set_id  7 fingerprint of the request  8 the fields to change (JSON object; null clears)
--      [9 exercise_id, 10 its base records JSON, when asked for]
-- -> {'ok'|'dup', ack} | {'need_base', exercise_id} | {'not_found'} | {'ended', status} | {'rate_limited', ms}
local set_id, fp = ARGV[6], ARGV[7]
if not owned() then return {'not_found'} end
local stored = redis.call('HGET', K.sets, set_id)
if not stored then return {'not_found', 'no such set'} end
local seen = recall('u:' .. set_id, fp)
if seen and seen[1] == 'dup' then return seen end
local closed = ended(field('status'))
if closed then return closed end
local limited = over_budget()
if limited then return limited end
if ARGV[9] then redis.call('HSETNX', K.base, ARGV[9], ARGV[10]) end

local old = cjson.decode(stored)
local set = cjson.decode(stored)
for k, v in pairs(cjson.decode(ARGV[8])) do set[k] = v end
local missing = need_base(set.exercise_id)
if missing then return missing end

local json = cjson.encode(set)
redis.call('HSET', K.sets, set_id, json)
redis.call('ZADD', K.order, set.completed_at, set_id)
tally(old, -1)
tally(set, 1)
local records, news = rewalk(set.exercise_id, set_id)
if old.exercise_id ~= set.exercise_id then rewalk(old.exercise_id, set_id) end
touch()
local _, ack = emit('set:updated', ',"set":' .. json .. ',"stats":' .. stats_json() .. ',"records":[' .. records .. ']')
if news ~= '' then
  emit('pr:achieved', ',"set_id":"' .. set_id .. '","exercise_id":' .. cjson.encode(set.exercise_id) ..
    ',"records":[' .. news .. ']')
end
memo('u:' .. set_id, fp, ack)
spend()
return {'ok', ack}
