-- Helpers shared by every workout script. live_state.py loads them with the scripts as
-- one Valkey function library (FUNCTION LOAD): each script becomes a function of it,
-- called with FCALL and still one atomic step, and these helpers are made once when the
-- library loads instead of at every call (that was a third of a short script's cost).
--
-- Every workout script gets the same KEYS (keys.py: Keys.workout), all in one hash
-- slot because they share the user's shard tag `{N}`, or the first of them:
--   1 state   hash: user_id, status, name, plan, room, fp, started_at, paused_at, paused_ms,
--                   seq, set_count, volume, rpe_sum, rpe_n, last_at, rest_* fields, ended_at
--   2 log     list: the events as published (Socket.IO packets), in seq order, the last CAP of them
--   3 due     zset: the shard's rest timers: state keys scored by ends_at
--   4 sets    hash: set_id -> the set as JSON
--   5 order   zset: set_id scored by completed_at (ties: by set_id)
--   6 ops     hash: idempotency memos, "<op>:<id>" -> fingerprint "\n" ack JSON
--   7 base    hash: exercise_id -> the user's standing records before this workout (JSON)
--   8 recs    hash: exercise_id -> this workout's records for it (JSON items, no brackets)
--   9 live    string: the user's live workout id
--  10 active  zset: the shard's open workouts: state keys scored by a time at or before their
--                  last activity (the start: the idle reaper reads last_at and moves the score on)
-- Each key a script gets costs Valkey its parsing and a Lua string, so the scripts every set
-- runs get only the first ones they use (live_state.py: KEYS_USED): rest_start 3, set_complete 8.
-- and the same ARGV head: 1 user_id  2 workout_id  3 now (ms)  4 channel  5 log cap
-- Scripts answer {status, ...}: 'ok' and 'dup' carry the ack JSON; anything else is an error.
--
-- Numbers go into JSON and commands as strings: Lua turns a number into a string with
-- sprintf's %.14g, which cost a tenth of rest_start's instructions (callgrind). So the time is
-- NOW_S as the caller sent it, and a number this computes is turned once, by `int`.

local KEYS, ARGV, UID, WID, NOW, NOW_S, CHANNEL, CAP
local K = {}  -- the call's keys by name: one table for every call, not a new one each
local WORK  -- entries (and KB) this call walked or read beyond a plain step's few (charged by `spend`)
local TAT  -- the user's budget as `over_budget` read it (ms; nil: nothing owed)

-- Every call begins here (live_state.py: library): the helpers read the call's keys and
-- arguments from these.
local function bind(keys, args)
  KEYS, ARGV = keys, args
  K.state, K.log, K.due, K.sets, K.order = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
  K.ops, K.base, K.recs, K.live, K.active = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
  UID, WID, NOW_S, CHANNEL = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
  NOW, CAP = tonumber(NOW_S), tonumber(ARGV[5])
  WORK, TAT = 0, nil
end

-- Count what reading `items` costs: an entry each, and one more per KB they hold (a replay
-- of events that carry long lists of records moves megabytes, not hundreds of entries).
local function read(items)
  local bytes = 0
  for _, item in ipairs(items) do bytes = bytes + #item end
  WORK = WORK + #items + math.floor(bytes / 1024)
  return items
end

-- A whole number as text: %d takes about half the instructions of Lua's own conversion.
local function int(n)
  return string.format('%d', n)
end

-- A JSON number with at most `places` decimals; no exponent for the values we meet.
local function num(x, places)
  local s = string.format('%.' .. (places or 3) .. 'f', x)
  s = string.gsub(s, '0+$', '')
  s = string.gsub(s, '%.$', '')
  if s == '-0' then s = '0' end
  return s
end

-- The key of a weight in "max reps at a weight" records; records.py: weight_key agrees.
local function wkey(w)
  return num(w or 0, 3)
end

local function field(name)
  return redis.call('HGET', K.state, name)
end

-- The workout exists and is the caller's; otherwise the caller sees not_found.
local function owned()
  return field('user_id') == UID
end

-- Scripts keyed by the user's live pointer (KEYS[1], "<prefix>{N}:u:<uid>:live") instead of a
-- workout's keys: point K and WID at the live workout. False when there is none, or it is not the caller's.
local function at_live_workout()
  local wid = redis.call('GET', KEYS[1])
  if not wid then return false end
  local base = string.sub(KEYS[1], 1, -6) .. ':w:' .. wid
  K.state, K.sets, K.order, K.base, K.recs = base, base .. ':sets', base .. ':order', base .. ':base', base .. ':recs'
  WID = wid
  return owned()
end

local function is_open(status)
  return status == 'live' or status == 'paused'
end

-- Only last_at: the active queue keeps the start time, and the idle reaper, which reads
-- last_at anyway, moves an entry on when it finds it stale (two commands fewer per set).
local function touch()
  redis.call('HSET', K.state, 'last_at', NOW_S)
end

-- Log the event as the workout's next seq and publish it as a ready-made Socket.IO EVENT
-- packet: the listener of every process sends these bytes as they are, in seq order.
-- The log keeps the same packet: a list (RPUSH: half a stream's XADD, measured) whose
-- entries are consecutive seqs, because every seq a script takes (here, or passed in) is
-- emitted here, once, within the same atomic call.
-- `body` is the rest of the payload after workout_id and seq.
-- A script that writes the state hash anyway reads seq with the rest, passes the next
-- one here and stores the last it used itself: one command fewer per event.
local function emit(name, body, seq)
  seq = seq or redis.call('HINCRBY', K.state, 'seq', 1)
  local json = '{"workout_id":"' .. WID .. '","seq":' .. int(seq) .. body .. '}'
  local packet = '2["' .. name .. '",' .. json .. ']'
  if redis.call('RPUSH', K.log, packet) > CAP then redis.call('LTRIM', K.log, -CAP, -1) end
  redis.call('PUBLISH', CHANNEL, packet)
  return seq, json
end

-- A logged packet's seq: the first "seq" in it is the event's own (emit writes it second,
-- after a workout_id that is a UUID).
local function seq_of(packet)
  return tonumber(string.match(packet, '"seq":(%d+)'))
end

local function memo(key, fp, ack)
  redis.call('HSET', K.ops, key, fp .. '\n' .. ack)
end

-- {'dup', ack} for a repeat of the same request, {'conflict', ...} for the same id
-- with other content, nil when the id is new.
local function recall(key, fp)
  local prev = redis.call('HGET', K.ops, key)
  if not prev then return nil end
  local cut = string.find(prev, '\n', 1, true)
  if string.sub(prev, 1, cut - 1) == fp then return {'dup', string.sub(prev, cut + 1)} end
  return {'conflict', 'this id was already used with different content'}
end

-- The workout's stats from its state fields (strings as stored, or numbers).
local function stats_of(started_at, paused_ms, paused_at, set_count, volume, rpe_sum, rpe_n, ended_at)
  local now = tonumber(ended_at) or NOW
  local paused = tonumber(paused_ms)
  if paused_at ~= '' then paused = paused + (now - tonumber(paused_at)) end
  local active_ms = math.max(0, now - tonumber(started_at) - paused)
  local avg = 'null'
  if tonumber(rpe_n) > 0 then avg = num(tonumber(rpe_sum) / tonumber(rpe_n), 2) end
  return '{"set_count":' .. int(set_count) .. ',"total_volume_kg":' .. num(tonumber(volume), 3) ..
    ',"duration_s":' .. int(math.floor(active_ms / 1000)) .. ',"avg_rpe":' .. avg .. '}'
end

local function stats_json()
  return stats_of(unpack(redis.call('HMGET', K.state, 'started_at', 'paused_ms', 'paused_at', 'set_count',
    'volume', 'rpe_sum', 'rpe_n', 'ended_at')))
end

-- A set's share of the running totals: volume counts weight x reps of every set
-- but warm-ups; avg_rpe is over the sets that have an rpe. (set_complete.lua gets a
-- new set's share from the caller: live_state.py, totals_share.)
local function tally(set, sign)
  redis.call('HINCRBY', K.state, 'set_count', sign)
  if set.set_type ~= 'warmup' and type(set.weight_kg) == 'number' and type(set.reps) == 'number' then
    redis.call('HINCRBYFLOAT', K.state, 'volume', sign * set.weight_kg * set.reps)
  end
  if type(set.rpe) == 'number' then
    redis.call('HINCRBYFLOAT', K.state, 'rpe_sum', sign * set.rpe)
    redis.call('HINCRBY', K.state, 'rpe_n', sign)
  end
end

-- ---- personal records --------------------------------------------------------
-- A workout's records for an exercise are found by walking its sets in
-- completed_at order from the user's standing records (base): a set holds a
-- record when it is strictly better than everything before it. Warm-ups and sets
-- without reps never count. So the outcome does not depend on the order in which
-- sets arrived, and an edit or delete simply walks again.

local function need_base(exercise)
  if redis.call('HEXISTS', K.base, exercise) == 0 then return {'need_base', exercise} end
  return nil
end

local function slot_of(rtype, weight)
  if weight then return rtype .. '@' .. weight end
  return rtype
end

-- The exercise's records: every set of the workout in completed_at order, weighed from the
-- standing records. A set logged last is weighed alone by the caller instead (records.py:
-- weigh_last_set, checked by set_complete.lua): a walk reads every set of the workout
-- (measured: 0.5-0.9 ms of Redis per set at 60 sets).
local function walk(exercise)
  local base = cjson.decode(redis.call('HGET', K.base, exercise))
  local best = {max_weight = base.max_weight, est_1rm = base.est_1rm, max_volume = base.max_volume}
  local reps_best = {}
  if type(base.reps) == 'table' then
    for w, r in pairs(base.reps) do reps_best[w] = r end
  end
  local holders, order = {}, {}
  local function consider(slot, rtype, value, set_id, weight)
    local current = best[slot]
    if slot ~= rtype then current = reps_best[weight] end
    if type(current) == 'number' and value <= current then return end
    if holders[slot] == nil then table.insert(order, slot) end
    holders[slot] = {type = rtype, value = value, previous = current, set_id = set_id, weight = weight}
    if slot ~= rtype then reps_best[weight] = value else best[slot] = value end
  end
  -- Values as records store them (3 decimals), so that weighing one set against the
  -- stored records decides exactly as a walk from the start does.
  local ids = redis.call('ZRANGE', K.order, 0, -1)
  WORK = WORK + #ids
  for _, id in ipairs(ids) do
    local raw = redis.call('HGET', K.sets, id)
    WORK = WORK + #raw / 1024
    local set = cjson.decode(raw)
    if set.exercise_id == exercise and set.set_type ~= 'warmup' and type(set.reps) == 'number' and set.reps >= 1 then
      local w = set.weight_kg
      if type(w) ~= 'number' then w = 0 end
      if w > 0 then
        consider('max_weight', 'max_weight', tonumber(num(w, 3)), id)
        consider('est_1rm', 'est_1rm', tonumber(num(w * (1 + set.reps / 30), 2)), id)
        consider('max_volume', 'max_volume', tonumber(num(w * set.reps, 3)), id)
      end
      local wk = wkey(w)
      consider('max_reps@' .. wk, 'max_reps', set.reps, id, wk)
    end
  end
  return holders, order
end

local function record_json(h)
  local previous = 'null'
  if type(h.previous) == 'number' then previous = num(h.previous, 3) end
  local s = '{"type":"' .. h.type .. '","value":' .. num(h.value, 3) .. ',"previous":' .. previous ..
    ',"set_id":"' .. h.set_id .. '"'
  if h.weight then s = s .. ',"weight_kg":' .. h.weight end
  return s .. '}'
end

-- Walk the exercise again and store its records. Returns the stored records (JSON items
-- without brackets) and the items `set_id` gained: a slot it did not hold before, or
-- holds now with a higher value (an edit that made a set heavier).
local function rewalk(exercise, set_id)
  local before = {}
  local old = redis.call('HGET', K.recs, exercise)
  if old then
    for _, r in ipairs(cjson.decode('[' .. old .. ']')) do
      local weight = nil
      if r.weight_kg then weight = wkey(r.weight_kg) end
      before[slot_of(r.type, weight)] = r
    end
  end
  local holders, order = walk(exercise)
  local items, news = {}, {}
  for _, slot in ipairs(order) do
    local h = holders[slot]
    local item = record_json(h)
    table.insert(items, item)
    local prev = before[slot]
    if h.set_id == set_id and (prev == nil or prev.set_id ~= set_id or h.value > prev.value) then
      table.insert(news, item)
    end
  end
  local joined = table.concat(items, ',')
  if joined == '' then redis.call('HDEL', K.recs, exercise) else redis.call('HSET', K.recs, exercise, joined) end
  return joined, table.concat(news, ',')
end

local function all_records_json()
  local items = {}
  for _, v in ipairs(redis.call('HVALS', K.recs)) do table.insert(items, v) end
  return '[' .. table.concat(items, ',') .. ']'
end

-- The rest timer's fields as stored (started_at, ends_at: ms; duration_s, exercise: JSON).
local function rest_fields(status, started_at, ends_at, duration_s, exercise)
  return '"status":"' .. status .. '","started_at":' .. started_at .. ',"ends_at":' .. ends_at ..
    ',"duration_s":' .. duration_s .. ',"exercise_id":' .. exercise
end

local function rest_json()
  local r = redis.call('HMGET', K.state, 'rest_status', 'rest_started_at', 'rest_ends_at', 'rest_duration_s',
    'rest_exercise')
  return rest_fields(r[1], r[2], r[3], r[4], r[5])
end

local function snapshot_json()
  local s = redis.call('HMGET', K.state, 'name', 'status', 'started_at', 'paused_at', 'room', 'plan', 'seq',
    'rest_status', 'ended_at')
  local ids = redis.call('ZRANGE', K.order, 0, -1)
  local sets = ''
  if #ids > 0 then sets = table.concat(read(redis.call('HMGET', K.sets, unpack(ids))), ',') end
  local rest = 'null'
  if s[8] ~= '' then rest = '{' .. rest_json() .. '}' end
  local paused_at = s[4]
  if paused_at == '' then paused_at = 'null' end
  local ended_at = s[9] or 'null'
  return '{"workout_id":"' .. WID .. '","name":' .. s[1] .. ',"status":"' .. s[2] .. '","started_at":' .. s[3] ..
    ',"paused_at":' .. paused_at .. ',"ended_at":' .. ended_at .. ',"room_id":' .. s[5] .. ',"plan":' .. s[6] .. ',"seq":' .. s[7] ..
    ',"sets":[' .. sets .. '],"stats":' .. stats_json() .. ',"rest":' .. rest ..
    ',"records":' .. all_records_json() .. '}'
end

-- ---- the user's cost budget ------------------------------------------------------
-- Valkey is the one process every server shares, so what one user's devices can make it do is
-- bounded, across devices and processes. A plain step (a set logged in order, a timer, a
-- pause) costs about the same whoever sends it and is bounded by the connections' rate
-- limits; a step that walks or reads every set or event of the workout (a set logged out of
-- order, an edit, a delete, a replay), or a set whose event carries more than
-- RECORDS_FREE_BYTES of records, costs in proportion to the workout, so those spend from a
-- per-user budget (GCRA, one key per user) refilled at BUDGET_PER_S units a second,
-- BUDGET_BURST at most in a row (live_state.py sets both): a unit for the step and one more
-- per WORK_PER_UNIT entries or KB it walked or read. A call is refused while the user owes more
-- than a burst; the call that goes into debt is done and charged after, when its size is known.

local function budget_key()
  return string.sub(K.state, 1, -(#WID + 4)) .. ':budget'  -- "<...>:u:<uid>:w:<wid>" -> "<...>:u:<uid>:budget"
end

-- One request against a rate limit of `burst` back to back, refilled one per `interval` ms:
-- GCRA, `key` holding the theoretical arrival time of the next request. A refused request
-- takes nothing. -> 0 when allowed, else the ms to wait.
local function gcra(key, now, interval, burst)
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local wait = tat - interval * (burst - 1) - now
  if wait > 0 then return math.ceil(wait) end
  tat = tat + interval
  redis.call('SET', key, tat, 'PX', math.ceil(tat - now))
  return 0
end

-- {'rate_limited', ms to wait} while the user's budget is spent; nil when the call may go on.
local function over_budget()
  TAT = tonumber(redis.call('GET', budget_key()))
  local wait = TAT and TAT - NOW - BUDGET_BURST * 1000 / BUDGET_PER_S
  if wait and wait > 0 then return {'rate_limited', int(math.ceil(wait))} end
  return nil
end

-- Charge the call: one unit, and one per WORK_PER_UNIT entries or KB it walked or read.
local function spend()
  local tat = math.max(TAT or NOW, NOW) + (1 + math.floor(WORK / WORK_PER_UNIT)) * 1000 / BUDGET_PER_S
  redis.call('SET', budget_key(), int(math.ceil(tat)), 'PX', int(math.ceil(tat - NOW)))
end

-- ---- walks the caller does -------------------------------------------------------------
-- A walk over 500 sets held Valkey for 5-9 ms, and every other user's command waited behind
-- it. So a step that needs one (a set logged before the last, an edit, a delete) answers
-- {'walk', seq, {exercise, its base, its stored records, ...}, {every set, in order}}
-- instead, and the caller walks (records.py: Walk) and sends the records back with
-- '#<seq>': they stand only while the workout's seq, which every set, edit and delete moves,
-- is still that. The read is what the user's budget pays for.
local function walk_reply(seq, exercises)
  local ids = redis.call('ZRANGE', K.order, 0, -1)
  local sets = {}
  if #ids > 0 then sets = read(redis.call('HMGET', K.sets, unpack(ids))) end
  spend()
  local found = {}
  for _, exercise in ipairs(exercises) do
    table.insert(found, exercise)
    table.insert(found, redis.call('HGET', K.base, exercise) or '{}')
    table.insert(found, redis.call('HGET', K.recs, exercise) or '')
  end
  return {'walk', seq, found, sets}
end

-- Before an edit or a delete, which always need a walk: nil when the caller walked at the
-- workout's current seq (`mark` '#<seq>'), or when the script is to walk itself ('*', the
-- budget allowing); otherwise {'walk', ...} of `exercises`, or {'rate_limited', ms}.
local function walk_first(mark, exercises)
  local seq = field('seq')
  if mark == '#' .. seq then return nil end
  local limited = over_budget()
  if limited then return limited end
  if mark == '*' then return nil end
  return walk_reply(seq, exercises)
end

-- Store an exercise's records as the caller walked them.
local function put_records(exercise, records)
  if records == '' then redis.call('HDEL', K.recs, exercise) else redis.call('HSET', K.recs, exercise, records) end
end

-- {'ended', status} for a workout that takes no more changes; nil while it is open.
local function ended(status)
  if not is_open(status) then return {'ended', status} end
  return nil
end

-- The common preamble of scripts that change an open workout: the error reply (nil when it
-- may go on), and the state's user_id, status and the fields named, read in one HMGET
-- (nil when the workout is not the caller's). (A script that has checked owned() already
-- goes on with ended(field('status')).)
local function check_open(...)
  local s = redis.call('HMGET', K.state, 'user_id', 'status', ...)
  if s[1] ~= UID then return {'not_found'}, nil end
  return ended(s[2]), s
end

-- Retire an open workout: it is no longer the user's live one, its timer and its
-- inactivity entry go, and its keys expire after `keep_s` (retries and sync still
-- find it until then).
local function end_workout(status, keep_s)
  redis.call('HSET', K.state, 'status', status, 'ended_at', NOW_S)
  if redis.call('GET', K.live) == WID then redis.call('DEL', K.live) end
  redis.call('ZREM', K.due, K.state)
  redis.call('ZREM', K.active, K.state)
  -- K.state .. ':log': the stream earlier versions logged to, which a workout started before
  -- an upgrade still has (in the workout's slot, as at_live_workout's keys are).
  for _, key in ipairs({K.state, K.sets, K.order, K.log, K.ops, K.base, K.recs, K.state .. ':log'}) do
    redis.call('EXPIRE', key, keep_s)
  end
end

-- Tell the workout's group room (`room`: its state field, JSON) what happened, if it was
-- started in one. The room channel is "<prefix>r:<room_id>", the user channel "<prefix>u:<user_id>".
local function room_activity(room, kind, data)
  if not room or room == 'null' then return end
  local room_id = string.sub(room, 2, -2)
  local prefix = string.sub(CHANNEL, 1, #CHANNEL - #UID - 2)
  redis.call('PUBLISH', prefix .. 'r:' .. room_id, '2["room:activity",{"room_id":"' .. room_id ..
    '","user_id":' .. cjson.encode(UID) .. ',"type":"' .. kind .. '","data":' .. data .. '}]')
end
