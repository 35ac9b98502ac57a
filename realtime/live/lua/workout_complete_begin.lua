-- workout:complete, step 1 of 2 — freeze the workout as `completing` and hand back the
-- snapshot to store. Nothing is emitted: the event comes with step 2, once Postgres
-- has the workout. A workout left `completing` (a process died, or Postgres was
-- away) is handed out again, and storing it twice is harmless (ON CONFLICT DO NOTHING).
-- ARGV 6 notes (JSON or null)  [7 only if idle since: ms, for the idle reaper]
-- -> {'store', snapshot JSON, notes JSON} | {'dup', ack} | {'not_found'} | {'ended', status} | {'active'}
if not owned() then return {'not_found'} end
local status = field('status')
-- A repeat gets the same ack; one with other notes would be acked without storing them: refused.
if status == 'completed' then
  if field('notes') ~= ARGV[6] then return {'ended', status} end
  return recall('complete', '') or {'ended', status}
end
if status == 'completing' then
  -- Another completion is in flight (or was left by a dead process): the same one joins it, one
  -- with other notes is refused; the idle reaper (ARGV 7) finishes it with the notes it has.
  if field('notes') ~= ARGV[6] and not ARGV[7] then return {'ended', status} end
  return {'store', snapshot_json(), field('notes')}
end
local closed = ended(status)
if closed then return closed end
if ARGV[7] and tonumber(field('last_at')) > tonumber(ARGV[7]) then return {'active'} end
redis.call('HSET', K.state, 'status', 'completing', 'before_completing', status, 'ended_at', NOW_S, 'notes', ARGV[6])
redis.call('ZREM', K.due, K.state)
return {'store', snapshot_json(), ARGV[6]}
