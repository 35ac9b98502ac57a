-- workout:discard — drop the workout without storing it; repeating it repeats the ack.
-- ARGV 6 seconds to keep the ended workout's keys (for retries and workout:sync)
--      [7 only if idle since: ms; the idle reaper's guard against a user who just came back]
-- -> {'ok', ack, room (JSON)} | {'dup', ack} | {'not_found'} | {'ended', status} | {'active'} | {'rate_limited', ms}
if not owned() then return {'not_found'} end
local status = field('status')
if status == 'discarded' then
  return recall('discard', '') or {'ended', 'discarded'}
end
local closed = ended(status)
if closed then return closed end
if ARGV[7] and tonumber(field('last_at')) > tonumber(ARGV[7]) then return {'active'} end
local limited = not ARGV[7] and over_budget()  -- the idle reaper's is not the user's
if limited then return limited end
local _, ack = emit('workout:discarded', '')
end_workout('discarded', tonumber(ARGV[6]))
memo('discard', '', ack)
if not ARGV[7] then spend() end
return {'ok', ack, field('room')}
