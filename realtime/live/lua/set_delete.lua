-- set:delete — remove a logged set; repeating it gives the same ack.
-- ARGV 6 set_id
-- -> {'ok'|'dup', ack} | {'not_found'} | {'ended', status} | {'rate_limited', ms}
local set_id = ARGV[6]
if not owned() then return {'not_found'} end
local seen = recall('d:' .. set_id, '')
if seen then return seen end
local closed = ended(field('status'))
if closed then return closed end
local limited = over_budget()
if limited then return limited end
local stored = redis.call('HGET', K.sets, set_id)
if not stored then return {'not_found', 'no such set'} end

local set = cjson.decode(stored)
redis.call('HDEL', K.sets, set_id)
redis.call('ZREM', K.order, set_id)
tally(set, -1)
local records = rewalk(set.exercise_id, set_id)
touch()
local _, ack = emit('set:deleted', ',"set_id":"' .. set_id .. '","exercise_id":' .. cjson.encode(set.exercise_id) ..
  ',"stats":' .. stats_json() .. ',"records":[' .. records .. ']')
memo('d:' .. set_id, '', ack)
spend()
return {'ok', ack}
