-- workout:complete could not store the workout (Postgres refused before committing):
-- the workout goes back to what it was, nothing lost, and the user trains on.
-- -> {'ok'} | {'not_found'} | {'ended', status}
if not owned() then return {'not_found'} end
local status = field('status')
if status ~= 'completing' then return {'ended', status} end
redis.call('HSET', K.state, 'status', field('before_completing'))
redis.call('HDEL', K.state, 'ended_at', 'before_completing', 'notes')
local rest = redis.call('HMGET', K.state, 'rest_status', 'rest_ends_at')
if rest[1] == 'running' then redis.call('ZADD', K.due, rest[2], K.state) end
return {'ok'}
