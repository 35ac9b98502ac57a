// The stack a team would otherwise pick, for the load test's --compare node: Node.js, socket.io 4
// with @socket.io/redis-adapter, node-redis, the live state in Redis through Lua (../lua), and rest
// timers as in-process setTimeout. It speaks the benchmark subset of docs/protocol.md: the
// handshake {token, device_id} (an HS256 JWT), session:ready, workout:start, set:complete ->
// set:completed to every device of the user with a per-workout seq, rest:start -> rest:timer
// running and, at ends_at, finished, and time:sync. Nothing else (no rooms, sync, persistence).
//
//     npm install && PORT=3100 REDIS_URL=redis://127.0.0.1:6379/0 JWT_SECRET=... node server.js

'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const crypto = require('crypto');
const jwt = require('jsonwebtoken');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { createClient, defineScript } = require('redis');

const PORT = Number(process.env.PORT || 3100);
const SECRET = process.env.JWT_SECRET;
// The Lua the peers share (loadtest/peers/lua), beside this folder or where LUA_DIR says.
const LUA_DIR = process.env.LUA_DIR || path.join(__dirname, '..', 'lua');
if (!SECRET) throw new Error('JWT_SECRET is required');

function script(name, keys) {
  return defineScript({
    NUMBER_OF_KEYS: keys,
    SCRIPT: fs.readFileSync(path.join(LUA_DIR, `${name}.lua`), 'utf8'),
    transformArguments: (...args) => args.map(String),
    transformReply: (reply) => reply,
  });
}

const scripts = {
  workoutStart: script('workout_start', 2),
  setComplete: script('set_complete', 2),
  restStart: script('rest_start', 1),
  restFinish: script('rest_finish', 1),
};

const ok = (data) => ({ ok: true, data });
const fail = (code, message) => ({ ok: false, error: { code, message } });
const userRoom = (uid) => `user:${uid}`;
const workoutKey = (wid) => `peer:workout:${wid}`;
const num = (v) => (v === undefined || v === null ? null : Number(v));

async function main() {
  const redis = createClient({ url: process.env.REDIS_URL, scripts });
  const pub = redis.duplicate();
  const sub = redis.duplicate();
  await Promise.all([redis.connect(), pub.connect(), sub.connect()]);

  const server = http.createServer((req, res) => {
    res.writeHead(req.url === '/healthz' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(req.url === '/healthz' ? '{"status":"ok"}' : '{}');
  });
  const io = new Server(server, { adapter: createAdapter(pub, sub), perMessageDeflate: false });

  io.use((socket, next) => {
    const auth = socket.handshake.auth || {};
    try {
      const claims = jwt.verify(String(auth.token || ''), SECRET, { algorithms: ['HS256'] });
      if (typeof claims.sub !== 'string' || typeof auth.device_id !== 'string') throw new Error('bad claims');
      socket.data.uid = claims.sub;
      socket.data.deviceId = auth.device_id;
      next();
    } catch (err) {
      const refused = new Error('unauthorized');
      refused.data = { code: 'unauthorized', message: String(err.message) };
      next(refused);
    }
  });

  const handlers = {
    'time:sync': async () => ok({ server_time: Date.now() }),

    'workout:start': async (uid, p) => {
      const now = Date.now();
      const name = JSON.stringify(p.name ?? null);
      const fp = crypto.createHash('sha1').update(`${p.workout_id}|${name}`).digest('hex');
      const [status, value] = await redis.workoutStart(`peer:user:${uid}:live`, workoutKey(p.workout_id), uid,
        p.workout_id, name, now, fp);
      if (status === 'conflict') return fail('conflict', 'another workout is live');
      const startedAt = Number(value);
      const workout = { workout_id: p.workout_id, name: p.name ?? null, status: 'live', started_at: startedAt,
        paused_at: null, ended_at: null, room_id: null, plan: p.plan ?? null, seq: 1, sets: [],
        stats: { set_count: 0, total_volume_kg: 0, duration_s: 0, avg_rpe: null }, rest: null, records: [] };
      const event = { workout_id: p.workout_id, seq: 1, workout };
      if (status === 'ok') io.to(userRoom(uid)).emit('workout:started', event);
      return ok(event);
    },

    'set:complete': async (uid, p) => {
      const now = Date.now();
      const set = { set_id: p.set_id, exercise_id: p.exercise_id, set_type: p.set_type ?? 'normal',
        weight_kg: num(p.weight_kg), reps: num(p.reps), duration_s: num(p.duration_s),
        distance_m: num(p.distance_m), rpe: num(p.rpe), notes: p.notes ?? null, completed_at: p.completed_at ?? now };
      const fp = crypto.createHash('sha1').update(JSON.stringify(p)).digest('hex');  // as sent: a retry matches
      const volume = (set.weight_kg ?? 0) * (set.reps ?? 0);
      const [status, value] = await redis.setComplete(workoutKey(p.workout_id), `${workoutKey(p.workout_id)}:sets`,
        uid, p.set_id, fp, volume, set.rpe ?? '', now);
      if (status === 'not_found') return fail('not_found', 'no such workout');
      if (status === 'conflict') return fail('conflict', 'this set_id was used for another set');
      const [seq, count, total, rpeSum, rpeN] = value.split(' ').map(Number);
      const event = { workout_id: p.workout_id, seq, set,
        stats: { set_count: count, total_volume_kg: total, duration_s: 0, avg_rpe: rpeN ? rpeSum / rpeN : null },
        records: [] };
      if (status === 'ok') io.to(userRoom(uid)).emit('set:completed', event);
      return ok(event);
    },

    'rest:start': async (uid, p) => {
      const startedAt = Date.now();
      const duration = Number(p.duration_s);
      const endsAt = startedAt + Math.round(duration * 1000);
      const timerId = crypto.randomUUID();
      const key = workoutKey(p.workout_id);
      const seq = await redis.restStart(key, uid, timerId, startedAt, endsAt, duration);
      if (seq === null) return fail('not_found', 'no such workout');
      const timer = { workout_id: p.workout_id, seq: Number(seq), status: 'running', started_at: startedAt,
        ends_at: endsAt, duration_s: duration, exercise_id: p.exercise_id ?? null, server_time: startedAt };
      io.to(userRoom(uid)).emit('rest:timer', timer);
      setTimeout(async () => {
        const finished = await redis.restFinish(key, timerId);
        if (finished === null) return;
        io.to(userRoom(uid)).emit('rest:timer',
          { ...timer, seq: Number(finished), status: 'finished', server_time: Date.now() });
      }, endsAt - Date.now());
      return ok(timer);
    },
  };

  io.on('connection', (socket) => {
    const { uid, deviceId } = socket.data;
    socket.join(userRoom(uid));
    socket.emit('session:ready', { user_id: uid, device_id: deviceId, server_time: Date.now(), active_workout: null });
    socket.onAny(async (event, ...args) => {
      const ack = typeof args[args.length - 1] === 'function' ? args.pop() : () => {};
      const handler = handlers[event];
      const payload = args[0];
      if (!handler) return ack(fail('invalid_payload', `unknown event '${event}'`));
      if (event !== 'time:sync' && (typeof payload !== 'object' || payload === null || !payload.workout_id)) {
        return ack(fail('invalid_payload', 'payload must be an object with workout_id'));
      }
      try {
        ack(await handler(uid, payload || {}));
      } catch (err) {
        console.error(event, err);
        ack(fail('internal', 'internal error'));
      }
    });
  });

  server.listen(PORT, '127.0.0.1', () => console.log(`node peer listening on ${PORT}`));
  const stop = () => { io.close(); Promise.allSettled([redis.quit(), pub.quit(), sub.quit()]).then(() => process.exit(0)); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => { console.error(err); process.exit(1); });
