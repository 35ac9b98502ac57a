-- workout:complete, step 2 of 2 — Postgres has the workout: emit workout:completed
-- with its summary and retire the live state. Repeating it repeats the ack.
-- ARGV 6 seconds to keep the ended workout's keys  7 exercise_count
-- -> {'ok'|'dup', ack} | {'not_found'} | {'ended', status}
if not owned() then return {'not_found'} end
local status = field('status')
if status == 'completed' then return recall('complete', '') or {'ended', status} end
if status ~= 'completing' then return {'ended', status} end
local s = cjson.decode(stats_json())
local summary = '{"duration_s":' .. s.duration_s .. ',"total_volume_kg":' .. num(s.total_volume_kg, 3) ..
  ',"set_count":' .. s.set_count .. ',"exercise_count":' .. ARGV[7] .. ',"prs":' .. all_records_json() .. '}'
local _, ack = emit('workout:completed', ',"summary":' .. summary)
room_activity(field('room'), 'workout_completed', '{"workout_id":"' .. WID .. '","summary":' .. summary .. '}')
end_workout('completed', tonumber(ARGV[6]))
memo('complete', '', ack)
return {'ok', ack}
