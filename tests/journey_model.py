"""The plain-Python model behind tests/test_journeys.py: what docs/protocol.md promises a user's live
workout, its event log, their history and their personal records must be.

Nothing here talks to a server: the state machine tells the model what it sent and what it was
acked, and the model checks the acks, snapshots, logs and stored workouts against what it holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

PLAN_KEYS = ("exercise_id", "sets", "reps", "weight_kg", "rest_s")
SET_KEYS = ("set_id", "exercise_id", "set_type", "weight_kg", "reps", "duration_s", "distance_m", "rpe", "notes",
            "completed_at")
FUTURE_TOLERANCE_MS = 5 * 60 * 1000  # docs: a completed_at more than 5 minutes ahead of server time is refused

# client event -> the server event its ack is (docs: "The ack of a changing event is that event's payload")
EVENT_OF_ACK = {
    "workout:start": "workout:started", "workout:pause": "workout:paused", "workout:resume": "workout:resumed",
    "workout:complete": "workout:completed", "workout:discard": "workout:discarded",
    "set:complete": "set:completed", "set:update": "set:updated", "set:delete": "set:deleted",
    "rest:start": "rest:timer", "rest:adjust": "rest:timer", "rest:skip": "rest:timer",
}

Slot = tuple[str, "str | None"]  # a record's (type, weight for max_reps)
Bases = dict[str, dict[Slot, float]]  # exercise -> the user's standing records


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def has_nul(value: Any) -> bool:
    """Text holding U+0000 anywhere in a payload: refused at the edge with invalid_payload, nothing changed."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(v) for v in value.values())
    return isinstance(value, list) and any(has_nul(v) for v in value)


def text(x: float, places: int = 3) -> str:
    """A number to at most `places` decimals (docs: records are compared as reported, to a gram)."""
    s = f"{x:.{places}f}".rstrip("0").rstrip(".")
    return "0" if s == "-0" else s


def close(a: float | None, b: float | None, tolerance: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tolerance


def plan_items(plan: Any) -> list[dict[str, Any]] | None:
    """A plan as a list of PlanItems, every field present (null when not sent)."""
    if plan is None:
        return None
    assert isinstance(plan, list), f"the plan is not a list: {plan!r}"
    return [{k: item.get(k) for k in PLAN_KEYS} for item in plan]


def set_record(payload: dict[str, Any], completed_at: int) -> dict[str, Any]:
    """The SetRecord a set:complete payload becomes: every field present, null when not given."""
    record = {k: payload.get(k) for k in SET_KEYS}
    record.update(set_type=payload.get("set_type", "normal"), completed_at=completed_at)
    return record


def volume_of(sets: list[dict[str, Any]]) -> float:
    """docs Stats: weight x reps of every set except warm-ups."""
    return sum(s["weight_kg"] * s["reps"] for s in sets
               if s["set_type"] != "warmup" and s["weight_kg"] is not None and s["reps"] is not None)


def avg_rpe_of(sets: list[dict[str, Any]]) -> float | None:
    rpes = [s["rpe"] for s in sets if s["rpe"] is not None]
    return float(text(sum(rpes) / len(rpes), 2)) if rpes else None


# ---- personal records (docs: Personal records) ------------------------------------------

def candidates(s: dict[str, Any]) -> list[tuple[Slot, float]]:
    """What a set offers each record slot, as records report values. Warm-ups and sets without reps never
    count; max_weight, est_1rm (Epley, to 0.01 kg) and max_volume need a weight; max_reps is per weight."""
    if s["set_type"] == "warmup" or s["reps"] is None or s["reps"] < 1:
        return []
    w = s["weight_kg"] or 0
    weighed = [(("max_weight", None), float(text(w))), (("est_1rm", None), float(text(w * (1 + s["reps"] / 30), 2))),
               (("max_volume", None), float(text(w * s["reps"])))] if w > 0 else []
    return [*weighed, (("max_reps", text(w)), float(s["reps"]))]


def records_of(stored: list[dict[str, Any]]) -> dict[Slot, float]:
    """Standing records from the stored sets of an exercise: a record only rises, so each is the best."""
    best: dict[Slot, float] = {}
    for s in stored:
        for slot, value in candidates(s):
            best[slot] = max(value, best.get(slot, value))
    return best


def walk(sets: list[dict[str, Any]], exercise: str, base: dict[Slot, float]) -> dict[Slot, tuple]:
    """A workout's records for an exercise: its sets in completed_at order, from the standing records; a
    set holds a record when strictly better than everything before it, `previous` being what it beat.
    slot -> (type, weight, value, previous, set_id), as rec_key writes a reported record."""
    best, holders = dict(base), {}
    for s in sets:
        for slot, value in candidates(s) if s["exercise_id"] == exercise else []:
            current = best.get(slot)
            if current is None or value > current:
                holders[slot] = (slot[0], slot[1], value, current, s["set_id"])
                best[slot] = value
    return holders


def rec_key(r: dict[str, Any]) -> tuple:
    assert ("weight_kg" in r) == (r["type"] == "max_reps"), r  # weight_kg for max_reps only
    previous = None if r["previous"] is None else float(text(r["previous"]))
    return (r["type"], text(r["weight_kg"]) if "weight_kg" in r else None, float(text(r["value"])), previous,
            r["set_id"])


def same_records(reported: list[dict[str, Any]], model: dict[Slot, tuple] | list[tuple]) -> bool:
    want = model.values() if isinstance(model, dict) else model
    return sorted(map(rec_key, reported), key=repr) == sorted(want, key=repr)


def check_standing(exercise: str, reported: list[dict[str, Any]], stored: dict[tuple[str, str], dict]) -> None:
    """GET /exercises/{id}/records against every stored set: one record per slot, held by a stored set of
    the exercise that is worth it, and the value the best of them (est_1rm: to the cent it is rounded to)."""
    got: dict[Slot, float] = {}
    for r in reported:
        slot = (r["type"], text(r["weight_kg"]) if r["type"] == "max_reps" else None)
        assert slot not in got, f"two {slot} records for {exercise}: {reported}"
        got[slot] = r["value"]
        held = stored.get((r["workout_id"], r["set_id"]))
        assert held and held["exercise_id"] == exercise, f"{r} is held by no stored {exercise} set"
        assert close(dict(candidates(held)).get(slot), r["value"], 0.0101), (r, held)
    want = records_of([s for s in stored.values() if s["exercise_id"] == exercise])
    assert got.keys() == want.keys(), (exercise, got, want)
    assert all(close(got[k], v, 0.0101 if k[0] == "est_1rm" else 1e-9) for k, v in want.items()), (got, want)


# ---- one workout -------------------------------------------------------------------------

@dataclass
class Workout:
    wid: str
    user: str
    start: dict[str, Any]  # the workout:start payload as sent
    started: dict[str, Any]  # its ack
    status: str = "live"  # live | paused | completed | discarded
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)  # set_id -> SetRecord now
    logged: dict[str, tuple[dict, dict]] = field(default_factory=dict)  # set_id -> (payload, ack)
    deleted: dict[str, dict[str, Any]] = field(default_factory=dict)  # set_id -> the delete's ack
    last_update: dict[str, tuple[dict, dict]] = field(default_factory=dict)  # set_id -> (payload, ack)
    pause_ack: dict[str, Any] | None = None  # while paused: the pause's ack (a repeat gets it again)
    rest: dict[str, Any] | None = None  # RestState now
    skip_ack: dict[str, Any] | None = None
    acked: dict[int, tuple[str, dict]] = field(default_factory=dict)  # seq -> (event, payload)
    prs: dict[int, list[tuple]] = field(default_factory=dict)  # seq -> records a pr:achieved there announces
    fired: int = 0  # rest timers that finished on their own (rest:timer finished, no ack)
    end_ack: dict[str, Any] | None = None  # workout:completed or workout:discarded
    notes: str | None = None
    left_room: bool = False  # its user left the room it was started in: it goes on without one

    @property
    def room_id(self) -> str | None:
        return None if self.left_room else self.start.get("room_id")

    @property
    def top(self) -> int:
        """The last seq the model knows of: an acked event, or a pr:achieved right after one."""
        return max([*self.acked, *self.prs], default=0)

    def ordered(self) -> list[dict[str, Any]]:
        """docs: sets in completed_at order, ties by set_id."""
        return sorted(self.sets.values(), key=lambda s: (s["completed_at"], s["set_id"]))

    def records(self, exercise: str, bases: Bases) -> dict[Slot, tuple]:
        return walk(self.ordered(), exercise, bases.get(exercise, {}))

    def all_records(self, bases: Bases) -> list[tuple]:
        return [r for e in {s["exercise_id"] for s in self.sets.values()} for r in self.records(e, bases).values()]

    def ack(self, client_event: str, data: dict[str, Any]) -> None:
        """A changing event was acked: its payload is the event every device gets at its seq."""
        assert data["workout_id"] == self.wid and data["seq"] not in self.acked, data
        self.acked[data["seq"]] = (EVENT_OF_ACK[client_event], data)

    def check_stats(self, stats: dict[str, Any]) -> None:
        sets = list(self.sets.values())
        assert stats["set_count"] == len(sets), (stats, sets)
        assert close(stats["total_volume_kg"], volume_of(sets), 0.002), (stats, volume_of(sets))
        assert close(stats["avg_rpe"], avg_rpe_of(sets), 0.006), (stats, avg_rpe_of(sets))
        assert stats["duration_s"] >= 0

    def changed(self, event: str, data: dict, exercise: str, set_id: str | None, before: dict, bases: Bases) -> bool:
        """A set event was acked: the stats, and the exercise's records after the change (docs: `records`);
        the records `set_id` newly holds (a slot it did not hold, or holds higher) are announced by
        pr:achieved at seq + 1. True when they are."""
        self.ack(event, data)
        self.check_stats(data["stats"])
        after = self.records(exercise, bases)
        assert same_records(data["records"], after), (data["records"], after)
        news = [r for slot, r in after.items()
                if r[4] == set_id and (slot not in before or before[slot][4] != set_id or r[2] > before[slot][2])]
        if news:
            self.prs[data["seq"] + 1] = news
        return bool(news)

    def log(self, payload: dict[str, Any], data: dict[str, Any], bases: Bases) -> bool:
        """set:complete acked: the set as sent (completed_at the server's when not sent)."""
        record = set_record(payload, payload.get("completed_at", data["set"]["completed_at"]))
        assert data["set"] == record, (data["set"], record)
        before = self.records(record["exercise_id"], bases)
        self.sets[record["set_id"]] = record
        self.logged[record["set_id"]] = (payload, data)
        return self.changed("set:complete", data, record["exercise_id"], record["set_id"], before, bases)

    def edit(self, payload: dict[str, Any], data: dict[str, Any], bases: Bases) -> None:
        """set:update acked: only the fields sent change; null clears."""
        set_id = payload["set_id"]
        record = {**self.sets[set_id], **{k: v for k, v in payload.items() if k not in ("workout_id", "set_id")}}
        assert data["set"] == record, (data["set"], record)
        before = self.records(record["exercise_id"], bases)
        self.sets[set_id] = record
        self.last_update[set_id] = (payload, data)
        self.changed("set:update", data, record["exercise_id"], set_id, before, bases)

    def drop(self, set_id: str, data: dict[str, Any], bases: Bases) -> None:
        """set:delete acked."""
        assert (data["set_id"], data["exercise_id"]) == (set_id, self.sets[set_id]["exercise_id"]), data
        del self.sets[set_id]
        self.deleted[set_id] = data
        self.changed("set:delete", data, data["exercise_id"], None, {}, bases)

    def check_snapshot(self, snap: dict[str, Any], bases: Bases) -> None:
        """A WorkoutSnapshot (session:ready, GET /workouts/active, workout:started) against the model."""
        assert (snap["workout_id"], snap["status"], snap["name"], snap["room_id"]) == (
            self.wid, self.status, self.start.get("name"), self.room_id), (snap, self.status)
        assert plan_items(snap["plan"]) == plan_items(self.start.get("plan")), (snap["plan"], self.start)
        assert snap["sets"] == self.ordered(), (snap["sets"], self.ordered())
        assert snap["seq"] >= self.top and (snap["paused_at"] is not None) == (self.status == "paused"), snap
        self.check_stats(snap["stats"])
        assert snap["rest"] == self.rest, (snap["rest"], self.rest)
        assert same_records(snap["records"], self.all_records(bases)), (snap["records"], self.all_records(bases))

    def check_summary(self, summary: dict[str, Any], bases: Bases) -> None:
        sets = list(self.sets.values())
        assert (summary["set_count"], summary["exercise_count"]) == (len(sets), len({s["exercise_id"] for s in sets}))
        assert close(summary["total_volume_kg"], volume_of(sets), 0.002), summary
        assert same_records(summary["prs"], self.all_records(bases)), (summary, self.all_records(bases))

    def check_stored(self, item: dict[str, Any]) -> None:
        """A WorkoutItem (GET /workouts) or WorkoutDetail against the workout as completed."""
        summary = self.end_ack["summary"]
        assert (item["name"], item["notes"], item["room_id"]) == (self.start.get("name"), self.notes, self.room_id)
        assert (item["set_count"], item["exercise_count"], item["duration_s"]) == (
            len(self.sets), summary["exercise_count"], summary["duration_s"]), (item, summary)
        assert close(item["total_volume_kg"], summary["total_volume_kg"], 0.002), (item, summary)
        assert item["started_at"] == self.started["workout"]["started_at"] <= item["completed_at"], item
        if "sets" in item:  # the detail: each acked set once, as last edited, none deleted; the plan as sent
            assert item["sets"] == self.ordered(), (item["sets"], self.ordered())
            sent = self.start.get("plan")
            assert (item["plan"] is None) == (sent is None), (item["plan"], sent)
            assert plan_items(item["plan"]) == plan_items(sent), (item["plan"], sent)

    def explain(self, log: list[tuple[str, dict[str, Any]]]) -> None:
        """The whole event log (workout:sync from 0) against the model: each acked event at its seq, each
        pr:achieved where a record was beaten and nowhere else, as many finished rest timers as the model
        saw finish, one set:completed per logged set however often it was sent, nothing else."""
        assert [d["seq"] for _, d in log] == list(range(1, len(log) + 1)), [d["seq"] for _, d in log]
        fired = 0
        for name, data in log:
            if data["seq"] in self.acked:
                assert (name, data) == self.acked[data["seq"]], (name, data, self.acked[data["seq"]])
            elif name == "pr:achieved" and data["seq"] in self.prs:
                assert same_records(data["records"], self.prs[data["seq"]]), (data, self.prs[data["seq"]])
            elif name == "rest:timer" and data["status"] == "finished":
                fired += 1
            else:
                raise AssertionError(f"an event nobody caused: {name} {data}")
        assert set(self.acked) | set(self.prs) <= {d["seq"] for _, d in log}, "an acked event is not in the log"
        assert fired == self.fired, f"{fired} rest timers finished on their own, expected {self.fired}"
        assert sorted(d["set"]["set_id"] for n, d in log if n == "set:completed") == sorted(self.logged)


@dataclass
class Room:
    room_id: str
    code: str
    owner: str
    members: set[str] = field(default_factory=set)
    present: set[tuple[str, str]] = field(default_factory=set)  # (user, device) that joined and are still in
