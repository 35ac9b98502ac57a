-- workout:discard — drop the workout without storing it; repeating it repeats the ack.
-- ARGV 6 seconds to keep the ended workout's keys (for retries and workout:sync)
--      [7 only if idle since: ms; the idle reaper's guard against a user who just came back]
-- -> {'ok', ack, room (JSON)} | {'dup', ack} | {'not_found'} | {'ended', status} | {'active'}
if not owned() then return {'not_found'} end
local status = field('status')
if status == 'discarded' then
  return recall('discard', '') or {'ended', 'discarded'}
end
local closed = ended(status)
if closed then return closed end
if ARGV[7] and tonumber(field('last_at')) > tonumber(ARGV[7]) then return {'active'} end
local _, ack = emit('workout:discarded', '')
end_workout('discarded', tonumber(ARGV[6]))
memo('discard', '', ack)
return {'ok', ack, field('room')}
