-- set:update — change fields of a logged set; the same change repeated is acked once.
-- ARGV 6 set_id  7 fingerprint of the request  8 the fields to change (JSON object; null clears)
--      9 '#<seq>': the caller walked every set with the change at that seq (lua/_lib.lua:
--      walk_reply), then 10, 11 the set's exercise's records and the news, 12 (13) its old
--      exercise's records (and news, unused) when the change moved it; '*': walk here; '': not yet
--      [14, 15 an exercise_id and its base records JSON, when asked for]
-- -> {'ok'|'dup', ack} | {'need_base', exercise_id} | {'walk', ...} | {'not_found'} | {'ended', status}
--    | {'rate_limited', ms}
local set_id, fp = ARGV[6], ARGV[7]
if not owned() then return {'not_found'} end
local stored = redis.call('HGET', K.sets, set_id)
if not stored then return {'not_found', 'no such set'} end
local seen = recall('u:' .. set_id, fp)
if seen and seen[1] == 'dup' then return seen end
local closed = ended(field('status'))
if closed then return closed end
if ARGV[14] then redis.call('HSETNX', K.base, ARGV[14], ARGV[15]) end

local old = cjson.decode(stored)
local set = cjson.decode(stored)
for k, v in pairs(cjson.decode(ARGV[8])) do set[k] = v end
local missing = need_base(set.exercise_id)
if missing then return missing end
local exercises = {set.exercise_id}
if old.exercise_id ~= set.exercise_id then table.insert(exercises, old.exercise_id) end
local walk = walk_first(ARGV[9], exercises)
if walk then return walk end
local walk_here = ARGV[9] == '*'

local json = cjson.encode(set)
redis.call('HSET', K.sets, set_id, json)
redis.call('ZADD', K.order, set.completed_at, set_id)
tally(old, -1)
tally(set, 1)
local records, news = ARGV[10], ARGV[11]
if walk_here then
  records, news = rewalk(set.exercise_id, set_id)
  if old.exercise_id ~= set.exercise_id then rewalk(old.exercise_id, set_id) end
else
  put_records(set.exercise_id, records)
  if old.exercise_id ~= set.exercise_id then put_records(old.exercise_id, ARGV[12]) end
end
touch()
local _, ack = emit('set:updated', ',"set":' .. json .. ',"stats":' .. stats_json() .. ',"records":[' .. records .. ']')
if news ~= '' then
  emit('pr:achieved', ',"set_id":"' .. set_id .. '","exercise_id":' .. cjson.encode(set.exercise_id) ..
    ',"records":[' .. news .. ']')
end
memo('u:' .. set_id, fp, ack)
if walk_here then spend() end
return {'ok', ack}
