-- workout:sync — the events after since_seq, all of them, or a snapshot when the
-- capped log no longer reaches back that far. Never a partial replay.
-- ARGV 6 since_seq
-- -> {'events', name, json, name, json, ...} | {'snapshot', json} | {'not_found'}
if not owned() then return {'not_found'} end
local since = tonumber(ARGV[6])
local seq = tonumber(field('seq'))
local out = {'events'}
if since >= seq then return out end
local first = redis.call('LINDEX', K.log, 0)
local oldest = first and seq_of(first)
if not oldest or oldest > since + 1 then return {'snapshot', snapshot_json()} end
-- Each packet is '2["<name>",<json>]'. The entries must be since + 1 .. seq, each in its place:
-- a log that skips one (written partly by a version that logged elsewhere, during a rolling
-- upgrade) gives a snapshot.
local packets = redis.call('LRANGE', K.log, since + 1 - oldest, -1)
if #packets ~= seq - since then return {'snapshot', snapshot_json()} end
for i, packet in ipairs(packets) do
  if seq_of(packet) ~= since + i then return {'snapshot', snapshot_json()} end
  local name = string.match(packet, '^2%["([^"]+)",')
  table.insert(out, name)
  table.insert(out, string.sub(packet, #name + 6, -2))
end
return out
