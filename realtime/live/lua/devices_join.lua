-- A device of a user connects: admit it unless the user already has `limit` other
-- devices connected. Entries of processes known to be dead are dropped first. A device has
-- one connection: an earlier one of the same device_id is replaced (its entry goes here,
-- and the caller ends it), so a user holds at most `limit` connections. The user's connects
-- are rate limited (_lib.lua's gcra): each can replace a connection and tells the user's rooms,
-- so a client reconnecting in a loop would flood everyone who shares a room with them.
-- KEYS 1 the user's connections hash: "<process>|<sid>" -> device_id  2 the user's connect rate
-- ARGV 1 this entry "<process>|<sid>"  2 device_id  3 limit  4 seconds to keep the hash
--      5 now (ms)  6 ms per connect  7 connects back to back  8.. dead processes
-- -> {1, devices now, replaced entry, ...} admitted | {0, devices now} refused
--    | {-1, ms to wait} over the connect rate
local wait = gcra(KEYS[2], tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]))
if wait > 0 then return {-1, wait} end
local dead = {}
for i = 8, #ARGV do dead[ARGV[i]] = true end
local entries = redis.call('HGETALL', KEYS[1])
local devices, count, replaced = {}, 0, {}
for i = 1, #entries, 2 do
  local process = string.match(entries[i], '^([^|]+)|')
  if not dead[process] then
    if entries[i + 1] == ARGV[2] and entries[i] ~= ARGV[1] then table.insert(replaced, entries[i]) end
    if not devices[entries[i + 1]] then
      devices[entries[i + 1]] = true
      count = count + 1
    end
  else
    redis.call('HDEL', KEYS[1], entries[i])
  end
end
-- A device reconnecting (its old connection not yet gone) takes no new place.
if not devices[ARGV[2]] then
  if count >= tonumber(ARGV[3]) then return {0, count} end
  count = count + 1
end
for _, entry in ipairs(replaced) do redis.call('HDEL', KEYS[1], entry) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])  -- entries of a process dead longer than we remember age out
return {1, count, unpack(replaced)}
