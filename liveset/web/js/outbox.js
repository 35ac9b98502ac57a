// Sets logged but not yet acknowledged, kept in localStorage so that a reload or a lost
// connection loses none. Each is sent again on every (re)connect until the server acks it:
// set:complete is idempotent by set_id, so a set that did arrive is stored once.

const KEY = "liveset.outbox";

export function pending() {
  try { return JSON.parse(localStorage.getItem(KEY) || "[]"); } catch { return []; }
}

function save(items) { localStorage.setItem(KEY, JSON.stringify(items)); }

export function add(payload) { save([...pending(), payload]); }

export function remove(setId) { save(pending().filter((p) => p.set_id !== setId)); }

/** Dropped without sending: the workout they belong to ended or is not this device's any more. */
export function dropWorkout(workoutId) { save(pending().filter((p) => p.workout_id !== workoutId)); }
