// The app: one Socket.IO connection per browser (this browser is one device), the live
// workout kept in step with the server by seq, sets queued while offline, and the room and
// history panels. docs/protocol.md is the contract every call here follows.
import { io } from "/vendor/socket.io.esm.min.js";
import { ENDED, apply, exerciseId, parsePlan, prefill, weight } from "/js/workout.js";
import * as outbox from "/js/outbox.js";
import { serverNow, sync as syncClock } from "/js/clock.js";
import { $, renderWorkout, toast, withdrawToasts, restTick, setLink, recordText, prefillNext } from "/js/render.js";
import { Room } from "/js/room.js";
import { History } from "/js/history.js";

const state = { w: null, user: null, editing: null, syncing: false };

// ---- who: the token (from the dev link's #token=, kept here) and this browser's device id ----
const hash = new URLSearchParams(location.hash.slice(1));
if (hash.get("token")) localStorage.setItem("liveset.token", hash.get("token"));
if (hash.get("join")) sessionStorage.setItem("liveset.join", hash.get("join"));
if (location.hash) history.replaceState(null, "", location.pathname);  // the token stays out of the address bar
let deviceId = localStorage.getItem("liveset.device");
if (!deviceId) { deviceId = crypto.randomUUID(); localStorage.setItem("liveset.device", deviceId); }
const token = localStorage.getItem("liveset.token");

function signIn(message) {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  setLink("signed out", "offline");
}

$("signin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  localStorage.setItem("liveset.token", $("token").value.trim());
  location.reload();
});

if (!token) signIn("Open the link the server printed when it started (python3 run.py server), or paste a token.");
else start();

function start() {
  const socket = io({ auth: { token, device_id: deviceId }, transports: ["websocket"] });
  const call = async (event, payload, timeout = 10000) => {
    try { return await socket.timeout(timeout).emitWithAck(event, payload); }
    catch { return { ok: false, error: { code: "timeout", message: "no answer from the server" } }; }
  };
  const historyPanel = new History(token);
  const room = new Room(call, (path) => historyPanel.get(path));
  $("app").hidden = false;

  // ---- the connection ----
  socket.on("connect", () => { $("offline").hidden = true; setLink("online", "online"); render(); });
  socket.on("disconnect", (reason) => {
    if (reason === "io server disconnect") return;  // session:expired said why
    $("offline").hidden = false;
    setLink("offline, reconnecting…", "offline");
    render();
  });
  socket.on("connect_error", (err) => {
    const data = err.data;
    if (!data) { $("offline").hidden = false; setLink("offline, reconnecting…", "offline"); return; }  // the network: it retries
    if (data.code === "rate_limited" || data.code === "unavailable") {
      const wait = data.details?.retry_after_ms ?? 2000;
      setLink(`busy, retrying in ${Math.ceil(wait / 1000)} s`, "offline");
      setTimeout(() => socket.connect(), wait);
    } else if (data.code === "conflict") {
      setLink("too many devices", "offline");
      toast(data.message, "error");
    } else {
      signIn(`Signed out: ${data.message}`);
    }
  });
  socket.on("session:expired", ({ reason }) => {
    signIn(reason === "replaced" ? "This device opened liveset in another tab or window; use that one."
      : "Your token expired: open a new link.");
  });
  socket.on("session:ready", async (ready) => {
    state.user = ready.user_id;
    const shown = state.w;
    state.w = ready.active_workout;
    // The workout shown here ended while this device was away: its last events tell how.
    if (shown && !ENDED.has(shown.status) && shown.workout_id !== state.w?.workout_id) {
      state.w = shown;
      await resync();
    }
    render();
    await syncClock(call);
    await flushOutbox();
    await room.rejoin();
    render();
  });

  // ---- the workout's events, in seq order ----
  socket.on("workout:started", (data) => {
    if (state.w && state.w.workout_id === data.workout_id && data.seq <= state.w.seq) return;
    if (state.w && state.w.workout_id !== data.workout_id && !ENDED.has(state.w.status)) return;  // not ours to show
    state.w = data.workout;
    render();
  });
  for (const name of ["workout:paused", "workout:resumed", "workout:completed", "workout:discarded", "set:completed",
    "set:updated", "set:deleted", "pr:achieved", "rest:timer"]) {
    socket.on(name, (data) => take(name, data));
  }
  socket.on("room:presence", (data) => room.presence(data));
  socket.on("room:activity", (data) => room.activity(data));

  function take(name, data) {
    const result = apply(state.w, name, data);
    if (result === "gap") { resync(); return; }
    if (result !== "applied") return;
    if (name === "pr:achieved") prToast(data);
    render();
  }

  async function resync() {
    if (state.syncing || !state.w) return;
    state.syncing = true;
    try {
      const id = state.w.workout_id;
      const reply = await call("workout:sync", { workout_id: id, since_seq: state.w.seq });
      if (!reply.ok || state.w?.workout_id !== id) return;
      if (reply.data.snapshot) state.w = reply.data.snapshot;
      else for (const e of reply.data.events) take(e.event, e.data);
    } finally {
      state.syncing = false;
      render();
    }
  }

  // ---- actions ----
  async function send(payload) {
    const ack = await call("set:complete", payload);
    if (ack.ok) {
      outbox.remove(payload.set_id);
      take("set:completed", ack.data);  // the event may come after the ack; seq skips the second
    } else if (!["timeout", "unavailable", "rate_limited"].includes(ack.error.code)) {
      outbox.remove(payload.set_id);  // the server will never take it: say so, keep nothing
      $("set-error").textContent = `Set not logged: ${ack.error.message}`;
    }
    render();
    return ack;
  }

  async function flushOutbox() {
    for (const payload of outbox.pending()) {
      if (!socket.connected) return;
      await send(payload);
    }
  }

  $("start-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    let plan;
    try { plan = parsePlan($("plan").value); } catch (err) { $("start-error").textContent = err.message; return; }
    $("start-error").textContent = "";
    const payload = { workout_id: crypto.randomUUID() };
    if ($("workout-name").value.trim()) payload.name = $("workout-name").value.trim();
    if (plan.length) payload.plan = plan;
    if (room.id) payload.room_id = room.id;
    const ack = await call("workout:start", payload);
    if (!ack.ok) { $("start-error").textContent = ack.error.message; return; }
    if (!state.w || state.w.workout_id !== ack.data.workout_id || state.w.seq < ack.data.seq) state.w = ack.data.workout;
    render();
  });

  $("set-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const w = state.w;
    let weightKg;
    try { weightKg = weight($("set-weight").value); } catch (err) { $("set-error").textContent = err.message; return; }
    const exercise = exerciseId($("set-exercise").value);
    if (!exercise) { $("set-error").textContent = "Name the exercise."; return; }
    $("set-error").textContent = "";
    const payload = { workout_id: w.workout_id, set_id: crypto.randomUUID(), exercise_id: exercise,
      weight_kg: weightKg, reps: Number($("set-reps").value), completed_at: Math.round(serverNow()) };
    outbox.add(payload);
    prefillNext();  // the form moves on with the plan, though the button keeps the focus
    render();
    if (!socket.connected) return;
    const ack = await send(payload);
    if (ack.ok) startRest(payload.exercise_id);
  });

  $("set-form").addEventListener("input", () => { $("set-error").textContent = ""; });
  $("set-exercise").addEventListener("change", () => {
    if (!exerciseId($("set-exercise").value)) return;
    const values = prefill(state.w, exerciseId($("set-exercise").value));
    $("set-weight").value = values.weight_kg ?? "";
    $("set-reps").value = values.reps ?? "";
  });

  function startRest(exercise) {
    const planned = (state.w.plan || []).find((p) => p.exercise_id === exercise)?.rest_s;
    const seconds = Number($("rest-seconds").value) || planned || 90;
    return simple("rest:start", { duration_s: seconds, exercise_id: exercise });
  }

  async function simple(event, extra = {}) {
    const ack = await call(event, { workout_id: state.w.workout_id, ...extra });
    if (!ack.ok) toast(ack.error.message, "error");
    return ack;
  }

  $("rest-start").addEventListener("click", () => startRest(state.w.sets.at(-1)?.exercise_id ?? null));
  $("rest-plus").addEventListener("click", () => simple("rest:adjust", { delta_s: 15 }));
  $("rest-minus").addEventListener("click", () => simple("rest:adjust", { delta_s: -15 }));
  $("rest-skip").addEventListener("click", () => simple("rest:skip"));
  $("pause").addEventListener("click", () => simple(state.w.status === "paused" ? "workout:resume" : "workout:pause"));
  $("complete").addEventListener("click", async () => {
    const ack = await simple("workout:complete");
    if (ack.ok) take("workout:completed", ack.data);
  });
  $("discard").addEventListener("click", async () => {
    if (!confirm("Discard this workout and its sets?")) return;
    const id = state.w.workout_id;
    const ack = await simple("workout:discard");
    if (ack.ok) { outbox.dropWorkout(id); take("workout:discarded", ack.data); }
  });
  $("summary-done").addEventListener("click", () => { state.w = null; render(); });

  $("sets").addEventListener("click", async (e) => {
    const button = e.target.closest("button");
    if (!button) return;
    const setId = button.closest("li").dataset.setId;
    if (button.dataset.action === "edit") state.editing = setId;
    else if (button.dataset.action === "cancel") state.editing = null;
    else if (button.dataset.action === "delete") await simple("set:delete", { set_id: setId });
    else if (button.dataset.action === "save") {
      const li = button.closest("li");
      const value = (name) => { const v = li.querySelector(`[name=${name}]`).value; return v === "" ? null : Number(v); };
      const ack = await simple("set:update", { set_id: setId, weight_kg: value("weight_kg"), reps: value("reps") });
      if (ack.ok) { state.editing = null; take("set:updated", ack.data); }
    }
    render();
  });

  // ---- the tabs ----
  for (const tab of document.querySelectorAll("[data-tab]")) {
    tab.addEventListener("click", () => {
      for (const t of document.querySelectorAll("[data-tab]")) t.setAttribute("aria-pressed", String(t === tab));
      for (const panel of document.querySelectorAll("[data-panel]")) panel.hidden = panel.id !== tab.dataset.tab;
      if (tab.dataset.tab === "history") historyPanel.load();
      if (tab.dataset.tab === "room" && !room.id) room.listMine();
    });
  }

  function prToast(data) {
    const records = data.records.filter((r) => r.set_id === data.set_id).map(recordText);
    if (records.length) toast(`New record, ${data.exercise_id}: ${records.join(", ")}`, "pr", data.set_id);
  }

  function render() {
    renderWorkout(state.w, outbox.pending(), state.editing, socket.connected);
    withdrawToasts(state.w);
  }

  setInterval(() => restTick(state.w), 100);
}
