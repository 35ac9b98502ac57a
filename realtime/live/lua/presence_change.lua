-- Who is in a room now: add or remove devices, drop the devices of dead processes,
-- and publish what changed as one room:presence event. Not prepended with _lib.
-- KEYS 1 the room's presence hash "<process>|<sid>" -> user_id
--      2 the room's workouts hash user_id -> workout_id (a workout started in the room)
-- ARGV 1 room_id  2 room channel  3 mode: 'join' | 'leave' | 'leave_user' | 'purge' | 'workout'
--      4 entry "<process>|<sid>" (join/leave) or user_id (leave_user, workout)
--      5 user_id (join) or workout_id, '' for none (workout)
--      6.. the processes known to be dead
-- -> the presence after the change, as JSON [{user_id, device_count, workout_id}, ...]
local room, channel, mode, target = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local dead = {}
for i = 6, #ARGV do dead[ARGV[i]] = true end

-- One read of the hash gives the counts before the change and, as entries are
-- dropped or added, after it.
local before, after, order, kept = {}, {}, {}, {}
local function count(into, user)
  if into[user] == nil then
    into[user] = 0
    if into == after then table.insert(order, user) end
  end
  into[user] = into[user] + 1
end
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local field, user = entries[i], entries[i + 1]
  count(before, user)
  local process = string.match(field, '^([^|]+)|')
  local drop = dead[process] or (mode == 'leave' and field == target) or (mode == 'leave_user' and user == target)
  if drop then
    redis.call('HDEL', KEYS[1], field)
  else
    kept[field] = true
    count(after, user)
  end
end
if mode == 'join' then
  redis.call('HSET', KEYS[1], target, ARGV[5])
  if not kept[target] then count(after, ARGV[5]) end
end
if mode == 'workout' then
  if ARGV[5] == '' then redis.call('HDEL', KEYS[2], target) else redis.call('HSET', KEYS[2], target, ARGV[5]) end
end

local function entry(user, n)
  local workout = redis.call('HGET', KEYS[2], user)
  local w = 'null'
  if workout then w = '"' .. workout .. '"' end
  return '{"user_id":' .. cjson.encode(user) .. ',"device_count":' .. n .. ',"workout_id":' .. w .. '}'
end

local joins, leaves = {}, {}
for _, user in ipairs(order) do
  if before[user] ~= after[user] or (mode == 'workout' and user == target) then
    table.insert(joins, entry(user, after[user]))
  end
end
for user, _ in pairs(before) do
  if after[user] == nil then table.insert(leaves, entry(user, 0)) end
end
if #joins > 0 or #leaves > 0 then
  redis.call('PUBLISH', channel, '2["room:presence",{"room_id":"' .. room .. '","joins":[' ..
    table.concat(joins, ',') .. '],"leaves":[' .. table.concat(leaves, ',') .. ']}]')
end
local all = {}
for _, user in ipairs(order) do table.insert(all, entry(user, after[user])) end
return '[' .. table.concat(all, ',') .. ']'
