-- One request against a rate limit shared by every process (the REST side's, per user or per
-- address): _lib.lua's gcra.
-- KEYS 1 the limit's key
-- ARGV 1 now (ms)  2 ms per request (1000 / rate)  3 burst: requests allowed back to back
-- -> 0 when allowed, else the ms to wait
return gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
