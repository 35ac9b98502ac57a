// The web app's seq logic (liveset/web/js/workout.js), as a property: however the server's
// events reach a device (late, twice, out of order, some never), applying what comes and
// syncing on a gap (workout:sync: the log after the device's seq) ends where applying every
// event once in order ends. Run by tests/test_web_app.py with Node's own test runner.
import { test } from "node:test";
import assert from "node:assert/strict";
import { apply } from "../../liveset/web/js/workout.js";

function random(seed) {  // mulberry32: the same runs every time
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const snapshot = () => ({ workout_id: "w", status: "live", seq: 1, sets: [], records: [], rest: null, plan: null,
  paused_at: null, stats: { set_count: 0, total_volume_kg: 0, duration_s: 0, avg_rpe: null } });

/** A server's log: each event as the Lua scripts would publish it, seq 2, 3, ... */
function serverLog(rnd, length) {
  const log = [];
  const sets = new Map();
  let seq = 1;
  let status = "live";
  const stats = () => ({ set_count: sets.size, total_volume_kg: [...sets.values()].reduce((v, s) => v + s.weight_kg * s.reps, 0),
    duration_s: seq, avg_rpe: null });
  const records = (exercise) => [...sets.values()].filter((s) => s.exercise_id === exercise).slice(0, 1)
    .map((s) => ({ type: "max_weight", value: s.weight_kg, previous: null, set_id: s.set_id }));
  for (let i = 0; i < length; i++) {
    const pick = rnd();
    const ids = [...sets.keys()];
    const data = { workout_id: "w", seq: ++seq };
    if (pick < 0.45 || ids.length === 0) {
      const set = { set_id: `s${i}`, exercise_id: rnd() < 0.5 ? "bench" : "row", set_type: "normal",
        weight_kg: Math.floor(rnd() * 100), reps: 5, duration_s: null, distance_m: null, rpe: null, notes: null,
        completed_at: Math.floor(rnd() * 1000) };
      sets.set(set.set_id, set);
      log.push(["set:completed", { ...data, set, stats: stats(), records: records(set.exercise_id) }]);
    } else if (pick < 0.6) {
      const set = { ...sets.get(ids[Math.floor(rnd() * ids.length)]), reps: 1 + Math.floor(rnd() * 10) };
      sets.set(set.set_id, set);
      log.push(["set:updated", { ...data, set, stats: stats(), records: records(set.exercise_id) }]);
    } else if (pick < 0.72) {
      const gone = sets.get(ids[Math.floor(rnd() * ids.length)]);
      sets.delete(gone.set_id);
      log.push(["set:deleted", { ...data, set_id: gone.set_id, exercise_id: gone.exercise_id, stats: stats(),
        records: records(gone.exercise_id) }]);
    } else if (pick < 0.86) {
      log.push(["rest:timer", { ...data, status: rnd() < 0.5 ? "running" : "skipped", started_at: seq, ends_at: seq + 90,
        duration_s: 90, exercise_id: null, server_time: seq }]);
    } else {
      status = status === "live" ? "paused" : "live";
      log.push([status === "paused" ? "workout:paused" : "workout:resumed", { ...data, at: seq }]);
    }
  }
  return log;
}

test("any delivery, with a sync on each gap, ends as the server's log in order", () => {
  for (let run = 0; run < 500; run++) {
    const rnd = random(run + 1);
    const log = serverLog(rnd, 1 + Math.floor(rnd() * 40));
    const expected = snapshot();
    for (const [name, data] of log) assert.equal(apply(expected, name, structuredClone(data)), "applied");

    const device = snapshot();
    let syncs = 0;
    const sync = () => {  // workout:sync {since_seq}: every event after it, in order
      syncs++;
      for (const [name, data] of log.filter(([, d]) => d.seq > device.seq)) apply(device, name, structuredClone(data));
    };
    // What the network delivers: each event maybe lost, maybe twice, in a shuffled order.
    const delivered = log.flatMap((e) => (rnd() < 0.1 ? [] : rnd() < 0.1 ? [e, e] : [e]));
    for (let i = delivered.length - 1; i > 0; i--) {
      if (rnd() < 0.3) { const j = Math.floor(rnd() * (i + 1)); [delivered[i], delivered[j]] = [delivered[j], delivered[i]]; }
    }
    for (const [name, data] of delivered) {
      if (apply(device, name, structuredClone(data)) === "gap") sync();
    }
    if (device.seq < log.length + 1) sync();  // the last events lost: a reconnect's sync
    assert.deepEqual(device, expected, `run ${run}: ${syncs} syncs`);
  }
});

test("an event of another workout, or one the device has, changes nothing", () => {
  const w = snapshot();
  assert.equal(apply(w, "workout:paused", { workout_id: "other", seq: 2, at: 1 }), "other");
  assert.equal(apply(w, "workout:paused", { workout_id: "w", seq: 1, at: 1 }), "old");
  assert.equal(apply(w, "workout:paused", { workout_id: "w", seq: 3, at: 1 }), "gap");
  assert.deepEqual(w, snapshot());
});
