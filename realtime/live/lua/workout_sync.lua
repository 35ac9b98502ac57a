-- workout:sync — the events after since_seq, all of them, or a snapshot when the
-- capped log no longer reaches back that far. Never a partial replay.
-- ARGV 6 since_seq
-- -> {'events', {packet, ...}} (each '2["<name>",<json>]', as published) | {'snapshot', json}
--    | {'not_found'} | {'rate_limited', ms}
-- (the user's budget is charged for what was read: lua/_lib.lua, spend)
if not owned() then return {'not_found'} end
local limited = over_budget()
if limited then return limited end
local since = tonumber(ARGV[6])
local function snapshot_reply()
  local snapshot = snapshot_json()
  spend()
  return {'snapshot', snapshot}
end
local seq = tonumber(field('seq'))
if since >= seq then spend() return {'events', {}} end
local first = redis.call('LINDEX', K.log, 0)
local oldest = first and seq_of(first)
if not oldest or oldest > since + 1 then return snapshot_reply() end
-- The entries must be since + 1 .. seq, each in its place: seqs only grow along the log, so
-- the right count between the right first and last is all of them. A log that skips one
-- (written partly by a version that logged elsewhere, during a rolling upgrade) gives a
-- snapshot. The packets go as they are: the caller takes them apart, not the Valkey every
-- process shares (a replay of 400 events took it 5 ms).
local packets = read(redis.call('LRANGE', K.log, since + 1 - oldest, -1))
if #packets ~= seq - since or seq_of(packets[1]) ~= since + 1 or seq_of(packets[#packets]) ~= seq then
  return snapshot_reply()
end
spend()
return {'events', packets}
