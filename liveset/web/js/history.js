// The history panel, from the REST side: past workouts (paged), one workout's sets and its
// exercises' records, and the volume per week as bars.
import { $, plural, recordText } from "/js/render.js";

const WEEKS = 12;

export class History {
  constructor(token) {
    this.token = token;
    this.cursor = null;
    $("more").addEventListener("click", () => this.page());
    $("workouts").addEventListener("click", (e) => {
      const id = e.target.closest("button")?.dataset.workout;
      if (id) this.detail(id);
    });
  }

  async get(path) {
    const response = await fetch(path, { headers: { Authorization: `Bearer ${this.token}` } });
    if (!response.ok) throw new Error((await response.json()).detail || response.statusText);
    return response.json();
  }

  /** Opening the panel: the newest page and the chart, fresh. */
  async load() {
    this.cursor = null;
    $("workouts").replaceChildren();
    $("workout-detail").hidden = true;
    await Promise.all([this.page(), this.chart()]);
  }

  async page() {
    const query = new URLSearchParams({ limit: "10" });
    if (this.cursor) query.set("cursor", this.cursor);
    const page = await this.get(`/api/v1/workouts?${query}`);
    for (const w of page.data) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.workout = w.workout_id;
      button.textContent = `${new Date(w.completed_at).toLocaleDateString()} · ${w.name || "Workout"} · ${plural(w.set_count, "set")} · ${Math.round(w.total_volume_kg)} kg`;
      li.append(button);
      $("workouts").append(li);
    }
    if (!$("workouts").children.length) $("workouts").textContent = "No completed workouts yet.";
    this.cursor = page.next_cursor;
    $("more").hidden = !this.cursor;
  }

  async detail(id) {
    const w = await this.get(`/api/v1/workouts/${encodeURIComponent(id)}`);
    $("detail-title").textContent = `${w.name || "Workout"}, ${new Date(w.started_at).toLocaleString()}`;
    $("detail-sets").replaceChildren(...w.sets.map((s) => {
      const li = document.createElement("li");
      li.textContent = [s.exercise_id, s.weight_kg != null && `${s.weight_kg} kg`, s.reps != null && `× ${s.reps}`].filter(Boolean).join(" ");
      return li;
    }));
    const exercises = [...new Set(w.sets.map((s) => s.exercise_id))];
    const records = await Promise.all(exercises.map((e) => this.get(`/api/v1/exercises/${encodeURIComponent(e)}/records`)));
    $("detail-records").replaceChildren(...records.flatMap((r) => r.data.map((item) => {
      const li = document.createElement("li");
      li.textContent = `${r.exercise_id}: ${recordText(item)}`;
      return li;
    })));
    $("workout-detail").hidden = false;
  }

  async chart() {
    const from = new Date(Date.now() - WEEKS * 7 * 86400e3).toISOString().slice(0, 10);
    const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    const volume = await this.get(`/api/v1/analytics/volume?${new URLSearchParams({ bucket: "week", from, tz })}`);
    const weeks = volume.data.slice(-WEEKS);
    const most = Math.max(1, ...weeks.map((b) => b.total_volume_kg));
    $("volume-chart").replaceChildren(...weeks.map((b) => {
      const li = document.createElement("li");
      const label = document.createElement("span");
      label.textContent = b.start;  // the week's first day
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${(b.total_volume_kg / most) * 100}%`;  // CSSOM, which the page's CSP allows
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = `${Math.round(b.total_volume_kg).toLocaleString()} kg`;
      li.append(label, bar, value);
      return li;
    }));
    if (!weeks.length) $("volume-chart").textContent = "Nothing logged in these weeks.";
  }
}
