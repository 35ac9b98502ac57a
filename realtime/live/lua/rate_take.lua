-- One request against a rate limit shared by every process (the REST side's, per user or per
-- address): GCRA, one key holding the theoretical arrival time of the next request.
-- KEYS 1 the limit's key
-- ARGV 1 now (ms)  2 ms per request (1000 / rate)  3 burst: requests allowed back to back
-- -> 0 when allowed, else the ms to wait
local now, interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat - interval * (burst - 1) - now
if wait > 0 then return math.ceil(wait) end
tat = tat + interval
redis.call('SET', KEYS[1], tat, 'PX', math.ceil(tat - now))
return 0
