"""The plain-Python model behind tests/test_journeys.py: what docs/protocol.md promises a user's
live workout, its event log, their history and their personal records must be.

Nothing here talks to a server; the state machine feeds it what it sent and what it was
acked, and asks it what must be true.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

PLAN_KEYS = ("exercise_id", "sets", "reps", "weight_kg", "rest_s")
SET_KEYS = ("set_id", "exercise_id", "set_type", "weight_kg", "reps", "duration_s", "distance_m", "rpe", "notes",
            "completed_at")
OPTIONAL = ("weight_kg", "reps", "duration_s", "distance_m", "rpe", "notes")
TEXT_FIELDS = ("name", "notes", "exercise_id", "invite_code")
FUTURE_TOLERANCE_MS = 5 * 60 * 1000  # docs: a completed_at more than 5 minutes ahead is refused

# client event -> the server event its ack is (docs: "The ack of a changing event is that event's payload")
EVENT_OF_ACK = {
    "workout:start": "workout:started", "workout:pause": "workout:paused", "workout:resume": "workout:resumed",
    "workout:complete": "workout:completed", "workout:discard": "workout:discarded",
    "set:complete": "set:completed", "set:update": "set:updated", "set:delete": "set:deleted",
    "rest:start": "rest:timer", "rest:adjust": "rest:timer", "rest:skip": "rest:timer",
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def has_nul(payload: dict[str, Any]) -> bool:
    """A text field holding U+0000: refused at the edge with invalid_payload, nothing changed."""
    def walk(value: Any) -> bool:
        if isinstance(value, str):
            return "\x00" in value
        if isinstance(value, dict):
            return any(walk(v) for v in value.values())
        if isinstance(value, list):
            return any(walk(v) for v in value)
        return False
    return walk(payload)


def text(x: float, places: int = 3) -> str:
    """A number to at most `places` decimals (docs: records and volume are compared to a gram)."""
    s = f"{x:.{places}f}".rstrip("0").rstrip(".")
    return "0" if s == "-0" else s


def close(a: float | None, b: float | None, tolerance: float = 0.0015) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tolerance


def plan_items(plan: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """A plan as the docs' PlanItem list: every field present, null when not sent."""
    if plan is None:
        return None
    assert isinstance(plan, list), f"the plan is not a list: {plan!r}"
    return [{k: item.get(k) for k in PLAN_KEYS} for item in plan]


def set_record(payload: dict[str, Any], completed_at: int) -> dict[str, Any]:
    """The SetRecord a set:complete payload must become: every field present, null when not given."""
    record = {k: payload.get(k) for k in SET_KEYS}
    record["set_type"] = payload.get("set_type", "normal")
    record["completed_at"] = completed_at
    return record


def volume_of(sets: list[dict[str, Any]]) -> float:
    """docs Stats: weight x reps of every set except warm-ups."""
    return sum(s["weight_kg"] * s["reps"] for s in sets
               if s["set_type"] != "warmup" and s["weight_kg"] is not None and s["reps"] is not None)


def avg_rpe_of(sets: list[dict[str, Any]]) -> float | None:
    rpes = [s["rpe"] for s in sets if s["rpe"] is not None]
    return float(text(sum(rpes) / len(rpes), 2)) if rpes else None


@dataclass
class Workout:
    wid: str
    user: str
    start: dict[str, Any]  # the workout:start payload as sent
    started: dict[str, Any] | None = None  # its ack
    status: str = "live"  # live | paused | completed | discarded
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)  # set_id -> SetRecord now
    logged: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)  # set_id -> (payload, ack)
    deleted: dict[str, dict[str, Any]] = field(default_factory=dict)  # set_id -> the delete's ack
    last_update: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    pause_ack: dict[str, Any] | None = None  # while paused: the pause's ack (a repeat gets it again)
    rest: dict[str, Any] | None = None  # RestState now
    skip_ack: dict[str, Any] | None = None
    acked: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # seq -> (event, payload)
    fired: int = 0  # rest timers that finished on their own (rest:timer finished, no ack)
    end_ack: dict[str, Any] | None = None  # workout:completed or workout:discarded
    notes: str | None = None
    room_id: str | None = None

    def ordered(self) -> list[dict[str, Any]]:
        """docs: sets in completed_at order, ties by set_id."""
        return sorted(self.sets.values(), key=lambda s: (s["completed_at"], s["set_id"]))

    @property
    def top(self) -> int:
        return max(self.acked, default=0)

    def ack(self, client_event: str, data: dict[str, Any]) -> None:
        """A changing event was acked: its payload is the event every device gets at that seq."""
        assert data["workout_id"] == self.wid, data
        self.acked[data["seq"]] = (EVENT_OF_ACK[client_event], data)

    def check_stats(self, stats: dict[str, Any]) -> None:
        sets = list(self.sets.values())
        assert stats["set_count"] == len(sets), (stats, sets)
        assert close(stats["total_volume_kg"], volume_of(sets), 0.002), (stats, volume_of(sets))
        assert close(stats["avg_rpe"], avg_rpe_of(sets), 0.006), (stats, avg_rpe_of(sets))
        assert stats["duration_s"] >= 0

    def check_snapshot(self, snap: dict[str, Any]) -> None:
        """A WorkoutSnapshot (session:ready, GET /workouts/active, workout:started) against the model."""
        assert snap["workout_id"] == self.wid and snap["status"] == self.status, (snap, self.status)
        assert snap["name"] == self.start.get("name") and snap["room_id"] == self.start.get("room_id")
        assert plan_items(snap["plan"]) == plan_items(self.start.get("plan")), (snap["plan"], self.start.get("plan"))
        assert snap["sets"] == self.ordered(), (snap["sets"], self.ordered())
        assert snap["seq"] >= self.top
        assert (snap["paused_at"] is not None) == (self.status == "paused")
        self.check_stats(snap["stats"])
        assert snap["rest"] == self.rest, (snap["rest"], self.rest)
        set_ids = set(self.sets)
        assert all(r["set_id"] in set_ids for r in snap["records"]), snap["records"]

    def explain(self, log: list[tuple[str, dict[str, Any]]]) -> None:
        """The workout's whole event log (workout:sync from 0, in order) against what was acked: each
        acked event at its seq, nothing twice, and nothing the model cannot account for."""
        assert [d["seq"] for _, d in log] == list(range(1, len(log) + 1)), [d["seq"] for _, d in log]
        for seq, event in self.acked.items():
            assert log[seq - 1] == event, (seq, log[seq - 1], event)
        fired = 0
        for i, (name, data) in enumerate(log):
            if data["seq"] in self.acked:
                continue
            before = log[i - 1] if i else None
            if name == "pr:achieved" and before and before[0] in ("set:completed", "set:updated"):
                assert data["set_id"] == before[1]["set"]["set_id"], (before, data)
            elif name == "rest:timer" and data["status"] == "finished":
                fired += 1
            else:
                raise AssertionError(f"an event nobody caused: {name} {data} (acked: {sorted(self.acked)})")
        assert fired == self.fired, f"{fired} rest timers finished on their own, expected {self.fired}"
        completed = [d["set"]["set_id"] for n, d in log if n == "set:completed"]
        assert sorted(completed) == sorted(self.logged), "one set:completed per logged set, however often sent"


def records_of(stored: list[dict[str, Any]]) -> dict[tuple[str, str | None], float]:
    """An exercise's standing records from every stored set of it (docs: Personal records):
    warm-ups and sets without reps never count; max_weight, est_1rm and max_volume need a weight;
    max_reps is per weight (bodyweight = 0). A record only rises, so each is the best ever stored."""
    best: dict[tuple[str, str | None], float] = {}

    def consider(slot: tuple[str, str | None], value: float) -> None:
        if slot not in best or value > best[slot]:
            best[slot] = value

    for s in stored:
        if s["set_type"] == "warmup" or s["reps"] is None or s["reps"] < 1:
            continue
        w = s["weight_kg"] or 0
        if w > 0:
            consider(("max_weight", None), float(text(w)))
            consider(("est_1rm", None), float(text(w * (1 + s["reps"] / 30), 2)))
            consider(("max_volume", None), float(text(w * s["reps"])))
        consider(("max_reps", text(w)), float(s["reps"]))
    return best


def record_value(kind: str, s: dict[str, Any]) -> float:
    w = s["weight_kg"] or 0
    return {"max_weight": float(text(w)), "est_1rm": float(text(w * (1 + s["reps"] / 30), 2)),
            "max_volume": float(text(w * s["reps"])), "max_reps": float(s["reps"])}[kind]


@dataclass
class Room:
    room_id: str
    code: str
    owner: str
    members: set[str] = field(default_factory=set)
    present: set[tuple[str, str]] = field(default_factory=set)  # (user, device) that joined and are still in
