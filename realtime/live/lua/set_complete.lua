-- set:complete — log a set; idempotent on set_id.
-- ARGV 6 set_id  7 fingerprint of the request  8 the set (JSON, completed_at filled in)
--      9 exercise_id  10 completed_at  11, 12 its share of the volume and its rpe ('' for none)
--      13, 14 the exercise's standing and stored records the caller weighed the set against
--      ('' when it has not seen them; 13 '*': walk every set here instead; 13 '#<seq>': the
--      caller walked every set at that seq, lua/_lib.lua: walk_reply)
--      15, 16 what it found (records.py: weigh_last_set or walk): the stored records with the
--      set ('=' when it took none), and the records the set took
--      [17 the standing records, when the caller had to load them]
-- -> {'ok', ack[, stored records when this walked]} | {'dup', ack} | {'stale', standing records or nil, stored records}
--    | {'walk', ...} | {'not_found'} | {'ended', status} | {'conflict', message} | {'full', most sets}
--    | {'rate_limited', ms}
local set_id, fp, exercise = ARGV[6], ARGV[7], ARGV[9]
-- The state hash is read once and written once: a command costs Valkey about as much as
-- this script's own work per field, and this is the script every set runs.
local closed, s = check_open('seq', 'set_count', 'volume', 'rpe_sum', 'rpe_n', 'room', 'started_at', 'paused_ms',
  'paused_at')
if not s then return closed end
local seen = recall('c:' .. set_id, fp)  -- a repeat gets its ack even after the workout ended
if seen then return seen end
if closed then return closed end
if tonumber(s[4]) >= MAX_SETS then return {'full', int(MAX_SETS)} end
if ARGV[17] then redis.call('HSETNX', K.base, exercise, ARGV[17]) end
-- Weighing a set is the costliest Lua here, and Valkey is the one process all servers
-- share: the caller weighs it, this only checks what it weighed against.
local base = redis.call('HGET', K.base, exercise)
local stored = redis.call('HGET', K.recs, exercise) or ''
if not base then return {'stale', base, stored} end
local mark = string.byte(ARGV[13])  -- 42 '*': walk here; 35 '#': the caller walked
local walk_here = mark == 42
local caller_walked = mark == 35 and ARGV[13] == '#' .. s[3]
if walk_here then
  local limited = over_budget()
  if limited then return limited end
elseif not caller_walked and mark ~= 35 and (base ~= ARGV[13] or stored ~= ARGV[14]) then
  return {'stale', base, stored}
end
local records, news = ARGV[15], ARGV[16]
if records == '=' then records = stored end
-- The event carries every record of the exercise: past RECORDS_FREE_BYTES of them (a record
-- per set, each at a new weight) the set spends from the budget by their size.
local large = not walk_here and #records > RECORDS_FREE_BYTES
if large then
  local limited = over_budget()
  if limited then return limited end
  WORK = WORK + #records / 1024
end
redis.call('ZADD', K.order, ARGV[10], set_id)
if not walk_here and not caller_walked then
  -- Weighed alone, or walked before the workout changed: a set that is not the last by
  -- completed_at (ties: by set_id, as the zset sorts them) needs a walk over every set, and
  -- only that costs the user's budget. A set logged in order, as nearly every set is, reads
  -- nothing more and spends nothing.
  if mark == 35 or redis.call('ZRANGE', K.order, -1, -1)[1] ~= set_id then
    redis.call('ZREM', K.order, set_id)
    local limited = over_budget()
    if limited then return limited end
    return walk_reply(s[3], {exercise})
  end
end
redis.call('HSET', K.sets, set_id, ARGV[8])
local set_count, volume, rpe_sum, rpe_n = tonumber(s[4]) + 1, tonumber(s[5]), tonumber(s[6]), tonumber(s[7])
if ARGV[11] ~= '' then volume = volume + tonumber(ARGV[11]) end
if ARGV[12] ~= '' then rpe_sum, rpe_n = rpe_sum + tonumber(ARGV[12]), rpe_n + 1 end
if walk_here then
  records, news = rewalk(exercise, set_id)
elseif records ~= stored then
  put_records(exercise, records)
end
local seq = tonumber(s[3]) + 1
local stats = stats_of(s[9], s[10], s[11], set_count, volume, rpe_sum, rpe_n, nil)
local _, ack = emit('set:completed', ',"set":' .. ARGV[8] .. ',"stats":' .. stats .. ',"records":[' .. records .. ']', seq)
room_activity(s[8], 'set_completed', '{"workout_id":"' .. WID .. '","set":' .. ARGV[8] .. '}')
if news ~= '' then
  local pr = ',"set_id":"' .. set_id .. '","exercise_id":' .. cjson.encode(exercise) ..
    ',"records":[' .. news .. ']'
  seq = seq + 1
  emit('pr:achieved', pr, seq)
  room_activity(s[8], 'pr_achieved', '{"workout_id":"' .. WID .. '"' .. pr .. '}')
end
redis.call('HSET', K.state, 'seq', seq, 'set_count', set_count, 'volume', volume, 'rpe_sum', rpe_sum,
  'rpe_n', rpe_n, 'last_at', NOW_S)
memo('c:' .. set_id, fp, ack)
if walk_here or large then spend() end
if walk_here or caller_walked then
  return {'ok', ack, records}  -- records the caller has not weighed against
end
return {'ok', ack}
