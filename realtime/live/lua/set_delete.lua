-- set:delete — remove a logged set; repeating it gives the same ack.
-- ARGV 6 set_id  7 '#<seq>': the caller walked every set but this one at that seq
--      (lua/_lib.lua: walk_reply), then 8 its exercise's records (9 news, unused);
--      '*': walk here; '': not yet
-- -> {'ok'|'dup', ack} | {'walk', ...} | {'not_found'} | {'ended', status} | {'rate_limited', ms}
local set_id = ARGV[6]
if not owned() then return {'not_found'} end
local seen = recall('d:' .. set_id, '')
if seen then return seen end
local closed = ended(field('status'))
if closed then return closed end
local stored = redis.call('HGET', K.sets, set_id)
if not stored then return {'not_found', 'no such set'} end
local set = cjson.decode(stored)
local walk = walk_first(ARGV[7], {set.exercise_id})
if walk then return walk end
local walk_here = ARGV[7] == '*'

redis.call('HDEL', K.sets, set_id)
redis.call('ZREM', K.order, set_id)
tally(set, -1)
local records = ARGV[8]
if walk_here then records = rewalk(set.exercise_id, set_id) else put_records(set.exercise_id, records) end
touch()
local _, ack = emit('set:deleted', ',"set_id":"' .. set_id .. '","exercise_id":' .. cjson.encode(set.exercise_id) ..
  ',"stats":' .. stats_json() .. ',"records":[' .. records .. ']')
memo('d:' .. set_id, '', ack)
if walk_here then spend() end
return {'ok', ack}
