-- room:leave / room:remove — the user's live workout, if it was started in that room, tells
-- the room nothing more: what it does goes to a room through the state's `room` field
-- (lua/_lib.lua: room_activity), and a member who left must not go on posting into it.
-- KEYS 1 the user's live pointer "<prefix>{N}:u:<uid>:live"
-- ARGV 6 the room as the state holds it (JSON)
-- -> {'ok'} | {'none'}
if not at_live_workout() or field('room') ~= ARGV[6] then return {'none'} end
redis.call('HSET', K.state, 'room', 'null')
return {'ok'}
