// Drawing the live workout, the rest timer and the toasts from state (never the other way).
import { ENDED, upNext, prefill } from "/js/workout.js";
import { serverNow, clock } from "/js/clock.js";

export const $ = (id) => document.getElementById(id);

const node = (tag, props = {}, ...children) => {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key.startsWith("data-") || key.startsWith("aria-")) el.setAttribute(key, value);
    else el[key] = value;
  }
  el.append(...children);
  return el;
};

export function setLink(text, state) {
  $("link").textContent = text;
  $("link").dataset.state = state;
}

export const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

const describe = (s) => [s.exercise_id, s.weight_kg != null && `${s.weight_kg} kg`, s.reps != null && `× ${s.reps}`]
  .filter(Boolean).join(" ");

let shownCurrent = null;

/** After a set is logged here: the form takes the plan's next step, focus or not. */
export function prefillNext() { shownCurrent = null; forced = true; }
let forced = false;

export function renderWorkout(w, pending, editing, online = true) {
  const live = w && !ENDED.has(w.status);
  $("start-form").hidden = Boolean(live) || w?.status === "completed";
  $("live").hidden = !live;
  $("summary").hidden = w?.status !== "completed";
  if (w?.status === "completed") renderSummary(w);
  if (!live) { shownCurrent = null; return; }

  $("live-name").textContent = w.name || "Workout";
  $("live-status").textContent = w.status === "paused" ? "paused: the workout's clock is stopped; resume to log sets"
    : `started ${new Date(w.started_at).toLocaleTimeString()}`;
  $("pause").textContent = w.status === "paused" ? "Resume" : "Pause";
  $("log-set").disabled = w.status === "paused";  // offline too: it is kept and sent later
  // These need the server now: offline they would only fail later.
  for (const id of ["rest-start", "rest-plus", "rest-minus", "rest-skip"]) $(id).disabled = !online;  // paused too
  for (const id of ["pause", "complete", "discard"]) $(id).disabled = !online;

  const { current, next, planned } = upNext(w);
  const target = (x) => `${x.item.exercise_id}${x.item.reps ? ` ${x.item.reps} reps` : ""}${x.item.weight_kg != null ? ` @ ${x.item.weight_kg} kg` : ""}`;
  $("up-next").textContent = !planned ? "" : !current ? "Plan done: log more or complete."
    : `Now: ${target(current)}, set ${current.done + 1} of ${current.item.sets || 1}` + (next ? ` · Next: ${next.item.exercise_id}` : "");
  const exercise = current?.item.exercise_id ?? w.sets.at(-1)?.exercise_id ?? "";
  const key = `${w.workout_id}:${exercise}:${w.sets.length}`;
  // Prefill when what is current changes, not while someone types in the form.
  if (key !== shownCurrent && (forced || !document.activeElement?.matches("#set-form input"))) {
    shownCurrent = key;
    forced = false;
    $("set-exercise").value = exercise;
    const values = prefill(w, exercise);
    $("set-weight").value = values.weight_kg ?? "";
    $("set-reps").value = values.reps ?? "";
  }

  const prSets = new Set(w.records.map((r) => r.set_id));
  const stored = new Set(w.sets.map((s) => s.set_id));
  const rows = w.sets.map((s) => setRow(s, prSets.has(s.set_id), editing === s.set_id, false));
  for (const p of pending) {
    if (p.workout_id === w.workout_id && !stored.has(p.set_id)) rows.push(setRow(p, false, false, true));
  }
  $("sets").replaceChildren(...rows);
  const st = w.stats;
  $("stats").textContent = `${plural(st.set_count, "set")} · ${Math.round(st.total_volume_kg)} kg` + (st.avg_rpe ? ` · RPE ${st.avg_rpe}` : "");
}

function setRow(s, pr, editing, isPending) {
  const li = node("li", { "data-set-id": s.set_id });
  if (isPending) li.setAttribute("data-pending", "");
  if (editing) {
    li.append(node("span", { className: "what" }, s.exercise_id),
      node("label", {}, "kg ", node("input", { name: "weight_kg", type: "number", step: "0.5", min: "0", value: s.weight_kg ?? "" })),
      node("label", {}, "reps ", node("input", { name: "reps", type: "number", min: "1", value: s.reps ?? "" })),
      node("button", { type: "button", "data-action": "save" }, "Save"),
      node("button", { type: "button", "data-action": "cancel" }, "Cancel"));
    return li;
  }
  li.append(node("span", { className: "what" }, describe(s), pr ? node("span", { className: "pr" }, " · PR") : ""));
  if (!isPending) {
    li.append(node("button", { type: "button", "data-action": "edit", "aria-label": `Edit ${describe(s)}` }, "Edit"),
      node("button", { type: "button", "data-action": "delete", "aria-label": `Delete ${describe(s)}` }, "Delete"));
  }
  return li;
}

function renderSummary(w) {
  const s = w.summary;
  if (!s) { $("summary-text").textContent = "Stored in your history."; $("summary-prs").replaceChildren(); return; }
  $("summary-text").textContent = `${plural(s.set_count, "set")} of ${plural(s.exercise_count, "exercise")} · ${Math.round(s.total_volume_kg)} kg · ${Math.round(s.duration_s / 60)} min`;
  const exerciseOf = new Map(w.sets.map((set) => [set.set_id, set.exercise_id]));
  $("summary-prs").replaceChildren(...s.prs.map((r) => node("li", { className: "pr" },
    `${exerciseOf.get(r.set_id) ?? "record"}: ${recordText(r)}`)));
}

// ---- the rest timer: every device counts down to the server's ends_at ----

let shownWorkout = null;  // what the end timer reads when it fires
let endTimer = null;
let endTimerFor = null;
let doneFor = null;
let audio = null;

export function restTick(w) {
  shownWorkout = w;
  const rest = w && !ENDED.has(w.status) ? w.rest : null;
  const clockEl = $("rest-clock");
  if (!rest) { clockEl.textContent = "--:--"; delete clockEl.dataset.state; $("rest-state").textContent = "no rest running"; return; }
  const key = `${w.workout_id}:${rest.started_at}`;
  const left = rest.ends_at - serverNow();
  if (rest.status === "running" && left > 0) {
    clockEl.textContent = clock(left);
    clockEl.dataset.state = "running";
    $("rest-state").textContent = `resting${rest.exercise_id ? ` after ${rest.exercise_id}` : ""}`;
    const at = `${key}:${rest.ends_at}`;
    if (endTimerFor !== at) {  // the end, to the millisecond, not at the next tick
      clearTimeout(endTimer);
      endTimerFor = at;
      endTimer = setTimeout(() => restTick(shownWorkout), Math.max(0, left));
    }
    return;
  }
  if (rest.status === "skipped") {
    clockEl.textContent = "--:--"; clockEl.dataset.state = "skipped"; $("rest-state").textContent = "rest skipped";
    return;
  }
  clockEl.textContent = "0:00";
  $("rest-state").textContent = "rest over: next set";
  if (doneFor !== key) { doneFor = key; restDone(clockEl); }
}

function restDone(clockEl) {
  clockEl.dataset.state = "done";
  clockEl.dataset.endedAt = String(Date.now());
  navigator.vibrate?.([200, 100, 200]);
  try {
    audio ??= new AudioContext();
    const tone = audio.createOscillator();
    tone.frequency.value = 880;
    tone.connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.3);
  } catch { /* no sound here: the screen still says it */ }
}

// ---- toasts: over the page, so nothing moves when one comes ----

export function toast(text, kind = "info", key = null) {
  const el = node("div", { className: "toast", "data-kind": kind }, text);
  if (key) el.dataset.key = key;
  $("toasts").append(el);
  setTimeout(() => el.remove(), kind === "error" ? 6000 : 4000);
}

/** A record toast (keyed by its set) whose set holds no record any more, edited or deleted, is withdrawn. */
export function withdrawToasts(w) {
  if (!w) return;
  for (const el of document.querySelectorAll(".toast[data-key]")) {
    const stands = w.records.some((r) => r.set_id === el.dataset.key);
    if (!stands && !("withdrawn" in el.dataset)) { el.dataset.withdrawn = ""; el.textContent += " (withdrawn)"; }
  }
}

const RECORD_NAMES = { max_weight: "heaviest", est_1rm: "est. 1RM", max_volume: "most volume", max_reps: "most reps" };

export function recordText(r) {
  const unit = r.type === "max_reps" ? (r.weight_kg != null ? ` at ${r.weight_kg} kg` : "") : " kg";
  return `${RECORD_NAMES[r.type] ?? r.type} ${r.value}${unit}`;
}
