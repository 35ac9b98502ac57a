// The group room panel: create or join by invite, who is here (per user, on how many devices,
// training or not), the others' activity; joined again after every reconnect (the server
// forgets a device's presence when its connection ends).
import { $, toast } from "/js/render.js";

const KEY = "liveset.room";

export class Room {
  constructor(call, get) {
    this.call = call;
    this.get = get;  // the REST side (history.js: History.get)
    this.room = null;
    this.people = new Map();  // user_id -> presence entry
    $("room-create").addEventListener("submit", (e) => { e.preventDefault(); this.enter("room:create", { name: $("room-name").value.trim() }); });
    $("room-join").addEventListener("submit", (e) => { e.preventDefault(); this.enter("room:join", { invite_code: inviteOf($("room-code").value) }); });
    $("room-leave").addEventListener("click", () => this.leave());
    $("room-copy").addEventListener("click", async () => {
      try { await navigator.clipboard.writeText($("room-invite").value); } catch { $("room-invite").select(); return; }
      $("room-copy").textContent = "Copied";
      setTimeout(() => { $("room-copy").textContent = "Copy invite"; }, 2000);
    });
    $("my-rooms-list").addEventListener("click", (e) => {
      const id = e.target.closest("button")?.dataset.room;
      if (id) this.enter("room:join", { room_id: id });
    });
  }

  get id() { return this.room?.room_id ?? null; }

  /** After session:ready: the room this browser was in, or the one an invite link named. */
  async rejoin() {
    const code = sessionStorage.getItem("liveset.join");
    sessionStorage.removeItem("liveset.join");
    if (code) {
      await this.enter("room:join", { invite_code: code });
      document.querySelector("[data-tab=room]").click();  // the invite was for this: show the room
      return;
    }
    const id = localStorage.getItem(KEY);
    if (id) return this.enter("room:join", { room_id: id }, true);
    return this.listMine();
  }

  /** Rooms this user is a member of (joined from another device, say): one tap to enter. */
  async listMine() {
    let rooms = [];
    try { rooms = (await this.get("/api/v1/rooms")).data; } catch { /* the list is a convenience */ }
    $("my-rooms").hidden = rooms.length === 0;
    $("my-rooms-list").replaceChildren(...rooms.map((r) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.room = r.room_id;
      button.textContent = `Enter ${r.name}`;
      li.append(button);
      return li;
    }));
  }

  async enter(event, payload, quiet = false) {
    const ack = await this.call(event, payload);
    if (!ack.ok) {
      if (quiet) localStorage.removeItem(KEY);  // removed from it, or it is gone
      else $("room-error").textContent = ack.error.message;
      return;
    }
    $("room-error").textContent = "";
    this.room = ack.data.room;
    localStorage.setItem(KEY, this.room.room_id);
    this.people = new Map(ack.data.presence.map((p) => [p.user_id, p]));
    this.render();
  }

  async leave() {
    const ack = await this.call("room:leave", { room_id: this.id });
    if (!ack.ok) { toast(ack.error.message, "error"); return; }
    this.room = null;
    localStorage.removeItem(KEY);
    $("activity").replaceChildren();
    this.render();
    await this.listMine();
  }

  presence({ room_id, joins, leaves }) {
    if (room_id !== this.id) return;
    for (const p of leaves) this.people.delete(p.user_id);
    for (const p of joins) this.people.set(p.user_id, p);
    this.render();
  }

  activity({ room_id, user_id, type, data }) {
    if (room_id !== this.id) return;
    const what = {
      workout_started: () => `started ${data.name || "a workout"}`,
      set_completed: () => `logged ${data.set.exercise_id} ${data.set.weight_kg ?? ""}${data.set.weight_kg != null ? " kg" : ""} × ${data.set.reps ?? "-"}`,
      pr_achieved: () => `set a record on ${data.exercise_id}`,
      workout_completed: () => `finished: ${data.summary.set_count} sets, ${Math.round(data.summary.total_volume_kg)} kg`,
    }[type]?.() ?? type;
    const li = document.createElement("li");
    li.textContent = `${user_id} ${what}`;
    li.dataset.type = type;
    $("activity").prepend(li);
    while ($("activity").children.length > 50) $("activity").lastChild.remove();
  }

  render() {
    $("room-out").hidden = Boolean(this.room);
    $("room-in").hidden = !this.room;
    if (!this.room) return;
    $("room-label").textContent = this.room.name;
    $("room-invite").value = `${location.origin}/#join=${encodeURIComponent(this.room.invite_code)}`;
    const rows = [...this.people.values()].map((p) => {
      const li = document.createElement("li");
      li.dataset.user = p.user_id;
      li.textContent = `${p.user_id} · ${p.device_count} device${p.device_count === 1 ? "" : "s"}${p.workout_id ? " · training" : ""}`;
      return li;
    });
    $("presence").replaceChildren(...rows);
  }
}

/** An invite link (…/#join=CODE) or the bare code. */
function inviteOf(text) {
  const match = text.trim().match(/#join=([^&]+)/);
  return match ? decodeURIComponent(match[1]) : text.trim();
}
