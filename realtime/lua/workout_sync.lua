-- workout:sync — the events after since_seq, all of them, or a snapshot when the
-- capped log no longer reaches back that far. Never a partial replay.
-- ARGV 6 since_seq
-- -> {'events', name, json, name, json, ...} | {'snapshot', json} | {'not_found'}
if not owned() then return {'not_found'} end
local since = tonumber(ARGV[6])
local seq = tonumber(field('seq'))
local out = {'events'}
if since >= seq then return out end
local first = redis.call('XRANGE', K.log, '-', '+', 'COUNT', 1)
local oldest = first[1] and tonumber(string.match(first[1][1], '^0%-(%d+)$'))
if not oldest or oldest > since + 1 then return {'snapshot', snapshot_json()} end
for _, entry in ipairs(redis.call('XRANGE', K.log, '0-' .. (since + 1), '+')) do
  table.insert(out, entry[2][2])
  table.insert(out, entry[2][4])
end
return out
