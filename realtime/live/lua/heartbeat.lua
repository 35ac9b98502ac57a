-- A process's heartbeat: renew it, move processes whose heartbeat expired to the
-- dead set, and answer which processes are dead. A process is presumed alive
-- until it is found dead here, so one that has just started is never mistaken
-- for a dead one by a peer that has not heard of it yet.
-- KEYS 1 live processes (zset: process -> last beat)  2 dead processes (zset: process -> found dead at)
-- ARGV 1 this process  2 now (s)  3 seconds without a beat that make a process dead  4 seconds to remember the dead
-- -> {found dead now..., '|', every process remembered dead...}, or {'dead'} when this process
--    is one of them: its peers dropped its devices and presence, so it must not go on as itself.
local now, ttl, keep = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return {'dead'} end
redis.call('ZADD', KEYS[1], now, ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
for _, process in ipairs(expired) do
  redis.call('ZREM', KEYS[1], process)
  redis.call('ZADD', KEYS[2], now, process)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - keep)
local out = expired
table.insert(out, '|')
for _, process in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do table.insert(out, process) end
return out
