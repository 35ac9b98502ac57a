// The live workout as every device shows it: the server's snapshot, moved on by its seq'd
// events (docs/protocol.md). An event at or below the seq shown is one the snapshot already
// has; one beyond seq + 1 means events were missed, and the caller syncs.

export const ENDED = new Set(["completed", "discarded"]);

/** Apply one server event to `w` (changed in place). -> "applied" | "old" | "gap" | "other" */
export function apply(w, name, data) {
  if (!w || data.workout_id !== w.workout_id) return "other";
  if (data.seq <= w.seq) return "old";
  if (data.seq > w.seq + 1) return "gap";
  w.seq = data.seq;
  switch (name) {
    case "workout:paused": w.status = "paused"; w.paused_at = data.at; break;
    case "workout:resumed": w.status = "live"; w.paused_at = null; break;
    case "workout:completed": w.status = "completed"; w.summary = data.summary; break;
    case "workout:discarded": w.status = "discarded"; break;
    case "set:completed":
    case "set:updated": upsertSet(w, data.set); takeRecords(w, data.set.exercise_id, data.records); w.stats = data.stats; break;
    case "set:deleted":
      takeRecords(w, data.exercise_id, data.records);  // while the set still names its exercise
      w.sets = w.sets.filter((s) => s.set_id !== data.set_id);
      w.stats = data.stats;
      break;
    case "pr:achieved": takeRecords(w, data.exercise_id, data.records); break;
    case "rest:timer": w.rest = { status: data.status, started_at: data.started_at, ends_at: data.ends_at,
      duration_s: data.duration_s, exercise_id: data.exercise_id }; break;
    default: break;
  }
  return "applied";
}

function upsertSet(w, set) {
  w.sets = w.sets.filter((s) => s.set_id !== set.set_id);
  w.sets.push(set);
  w.sets.sort((a, b) => a.completed_at - b.completed_at || (a.set_id < b.set_id ? -1 : 1));
}

// Records come per exercise ("the exercise's records in this workout now"); a record names its
// set, and the set its exercise.
function takeRecords(w, exercise, records) {
  const exerciseOf = new Map(w.sets.map((s) => [s.set_id, s.exercise_id]));
  w.records = w.records.filter((r) => exerciseOf.get(r.set_id) !== exercise).concat(records);
}

/** The plan's next step: the first item with sets still to do, and the one after it. */
export function upNext(w) {
  const done = new Map();
  for (const s of w.sets) if (s.set_type !== "warmup") done.set(s.exercise_id, (done.get(s.exercise_id) || 0) + 1);
  const plan = w.plan || [];
  const left = plan.map((item) => ({ item, done: done.get(item.exercise_id) || 0 }))
    .filter(({ item, done: n }) => n < (item.sets || 1));
  return { current: left[0] || null, next: left[1] || null, planned: plan.length > 0 };
}

/** What to prefill for `exercise`: its last set, else the plan's target. */
export function prefill(w, exercise) {
  const last = [...w.sets].reverse().find((s) => s.exercise_id === exercise);
  if (last) return { weight_kg: last.weight_kg, reps: last.reps };
  const item = (w.plan || []).find((p) => p.exercise_id === exercise);
  return item ? { weight_kg: item.weight_kg ?? null, reps: item.reps ?? null } : { weight_kg: null, reps: null };
}

/** What the app calls an exercise: "Bench Press" and "bench_press" are one (its records too). */
export function exerciseId(name) {
  return name.trim().toLowerCase().replace(/\s+/g, "_").slice(0, 64);
}

/** A weight as typed: "62.5" or "62,5"; "" is none (bodyweight). -> number | null, or throws. */
export function weight(text) {
  const t = text.trim().replace(",", ".");
  if (t === "") return null;
  const n = Number(t);
  if (!/^\d+(\.\d+)?$/.test(t) || n > 2000) throw new Error(`"${text}" is not a weight: kg from 0 to 2000, like 62.5`);
  return n;
}

/** `Bench press 3x5 60` per line (sets x reps, then kg; only the name is needed) -> plan items. */
export function parsePlan(text) {
  const items = [];
  for (const line of text.split("\n").map((l) => l.trim()).filter(Boolean)) {
    const m = line.match(/^(.+?)(?:\s+(\d+)\s*[x×]\s*(\d+))?(?:\s+(\d+(?:[.,]\d+)?)\s*(?:kg)?)?$/i);
    const name = m && exerciseId(m[1]);
    if (!name || /^\d/.test(name)) throw new Error(`cannot read the plan line "${line}": write it as "Bench press 3x5 60"`);
    const item = { exercise_id: name };
    if (m[2]) {
      item.sets = Number(m[2]);
      item.reps = Number(m[3]);
      if (item.sets < 1 || item.sets > 100 || item.reps > 1000) throw new Error(`"${line}": 1-100 sets of 0-1000 reps`);
    }
    if (m[4]) item.weight_kg = weight(m[4]);
    items.push(item);
  }
  return items;
}
