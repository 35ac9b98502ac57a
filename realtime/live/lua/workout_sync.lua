-- workout:sync — the events after since_seq, all of them, or a snapshot when the
-- capped log no longer reaches back that far. Never a partial replay.
-- ARGV 6 since_seq
-- -> {'events', name, json, name, json, ...} | {'snapshot', json} | {'not_found'} | {'rate_limited', ms}
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
local out = {'events'}
if since >= seq then spend() return out end
local first = redis.call('LINDEX', K.log, 0)
local oldest = first and seq_of(first)
if not oldest or oldest > since + 1 then return snapshot_reply() end
-- Each packet is '2["<name>",<json>]'. The entries must be since + 1 .. seq, each in its place:
-- a log that skips one (written partly by a version that logged elsewhere, during a rolling
-- upgrade) gives a snapshot.
local packets = redis.call('LRANGE', K.log, since + 1 - oldest, -1)
WORK = WORK + #packets
if #packets ~= seq - since then return snapshot_reply() end
for i, packet in ipairs(packets) do
  if seq_of(packet) ~= since + i then return snapshot_reply() end
  local name = string.match(packet, '^2%["([^"]+)",')
  table.insert(out, name)
  table.insert(out, string.sub(packet, #name + 6, -2))
end
spend()
return out
