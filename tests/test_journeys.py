"""Whole workouts of 2-3 users, end to end, against a model (tests/journey_model.py).

A hypothesis state machine drives real Socket.IO clients (websocket) of each user on both of
two `web:` processes of the Procfile (one Redis keyspace, one Postgres database): workouts with
and without plans, sets logged (back-dated, retried from both devices at once), edited and
deleted, rest timers, pause, disconnects with workout:sync, completion and discard, group
rooms. It checks every ack against docs/protocol.md, every device's events (gapless seq, no
duplicates, each decoded strictly, each ack the event at its seq, nothing unexplained), and
after each completion the REST history, the workout with its sets and plan, and the records.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from realtime import protocol as p

from .clients import Device, check, token
from .journey_model import (FUTURE_TOLERANCE_MS, Room, Workout, close, has_nul, now_ms, plan_items, record_value,
                            records_of, set_record, text)
from .servers import TEST_SECRET, ServerProcess

pytestmark = pytest.mark.slow

EXERCISES = ["bench", "squat", "row", "press"]
NOTES = st.sampled_from([None, "felt strong", "Kniebeuge ✓ 💪", "bad\x00note"])
PLAN_ITEM = st.fixed_dictionaries({"exercise_id": st.sampled_from(EXERCISES)}, optional={
    "sets": st.integers(1, 5), "reps": st.integers(1, 12), "weight_kg": st.sampled_from([20, 42.5, 60]),
    "rest_s": st.sampled_from([60, 90.5])})
PLANS = st.none() | st.lists(PLAN_ITEM, max_size=6)
WEIGHTS = st.sampled_from([None, 0, 20, 42.5, 60, 80.25, 100, 102.5])
REPS = st.sampled_from([None, 0, 1, 5, 8, 12])
RPES = st.sampled_from([None, 6, 7.5, 9, 10])
KINDS = st.sampled_from(["normal", "warmup", "drop", "failure"])
# completed_at relative to now: None (the server's clock), back-dated as if logged offline, a
# little ahead (a device clock running fast), or too far ahead (refused).
OFFSETS = st.sampled_from([None, None, -90_000, -3_600_000, -2 * 86_400_000, 60_000, 10 * 60_000])
PATCH = st.fixed_dictionaries({}, optional={
    "reps": st.sampled_from([None, 0, 3, 10]), "weight_kg": st.sampled_from([None, 25, 61.5, 110]),
    "rpe": st.sampled_from([None, 8, 9.5]), "set_type": KINDS, "notes": NOTES,
    "exercise_id": st.sampled_from(EXERCISES), "completed_at": st.sampled_from([-120_000, -7_200_000, 600_000])})
PICK = st.integers(0, 1000)
ACK_TYPES = {name: ack for name, (_, ack) in p.CLIENT_EVENTS.items()}


@dataclass
class Env:
    loop: asyncio.AbstractEventLoop
    urls: list[str]
    http: httpx.AsyncClient


@pytest.fixture(scope="module")
def journey_env(redis_url: str, database_url: str, workdir: Path):
    """Two web processes of the Procfile sharing one Redis prefix and one database, for the whole test."""
    loop = asyncio.new_event_loop()
    env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url, "JWT_SECRET": TEST_SECRET,
           "REDIS_PREFIX": f"j{uuid.uuid4().hex[:8]}:", "LOG_LEVEL": "WARNING",
           # the machine sends events back to back from a few devices; the rate limit is not under test
           "RATE_LIMIT_PER_S": "100000", "RATE_LIMIT_BURST": "100000"}
    webs = [ServerProcess(env, workdir) for _ in range(2)]
    http = httpx.AsyncClient(timeout=10)
    try:
        loop.run_until_complete(asyncio.gather(*(w.start() for w in webs)))
        yield Env(loop, [w.url for w in webs], http)
    finally:
        loop.run_until_complete(http.aclose())
        for web in webs:
            web.stop()
        loop.close()


def new_id() -> str:
    return str(uuid.uuid4())


class Phone:
    """One device of a user: its connection, and every workout event it has applied (live or synced)."""

    def __init__(self, user: str, name: str) -> None:
        self.user, self.name = user, name
        self.dev: Device | None = None
        self.seen = 0  # events of this connection already absorbed
        self.stream: dict[str, list[int]] = {}  # this connection's live seqs per workout
        self.known: dict[str, dict[int, tuple[str, dict]]] = {}  # workout -> seq -> (event, payload)
        self.activity: list[dict] = []  # room:activity received, every connection
        self.expected: Counter = Counter()  # room:activity that must arrive: (room, type, workout, set)

    async def connect(self, url: str) -> dict:
        self.dev = await Device().connect(url, {"token": token(self.user), "device_id": self.name})
        self.seen, self.stream = 0, {}
        (ready,) = await self.dev.wait_for("session:ready")
        check("session:ready", ready)
        assert (ready["user_id"], ready["device_id"]) == (self.user, self.name), ready
        return ready

    def absorb(self) -> None:
        assert self.dev is not None
        for name, data in self.dev.events[self.seen:]:
            check(name, data)  # every event decodes strictly with its Struct
            if name == "room:activity":
                self.activity.append(data)
            elif "seq" in data:
                stream = self.stream.setdefault(data["workout_id"], [])
                assert not stream or data["seq"] == stream[-1] + 1, f"{self.name}: {data['seq']} after {stream}"
                stream.append(data["seq"])
                self.learn(name, data)
        self.seen = len(self.dev.events)

    def learn(self, name: str, data: dict) -> None:
        known = self.known.setdefault(data["workout_id"], {})
        assert known.get(data["seq"], (name, data)) == (name, data), (known[data["seq"]], name, data)
        known[data["seq"]] = (name, data)

    def contiguous(self, wid: str) -> int:
        seqs = sorted(self.known.get(wid, {}))
        assert seqs == list(range(1, len(seqs) + 1)), f"{self.name} has a gap in {wid}: {seqs}"
        return len(seqs)


class Journeys(RuleBasedStateMachine):
    env: Env

    def __init__(self) -> None:
        super().__init__()
        self.users: list[str] = []
        self.phones: dict[str, list[Phone]] = {}
        self.live: dict[str, Workout | None] = {}
        self.workouts: dict[str, list[Workout]] = {}
        self.history: dict[str, dict[str, Workout]] = {}  # completed, not deleted
        self.exercises: dict[str, set[str]] = {}  # every exercise a user ever stored
        self.rooms: list[Room] = []
        self.wrong_codes: Counter = Counter()
        self.turn = 0

    # ---- plumbing ------------------------------------------------------------

    def run(self, coro: Any) -> Any:
        return self.env.loop.run_until_complete(coro)

    def url(self) -> str:
        self.turn += 1
        return self.env.urls[self.turn % 2]

    def user(self, pick: int, live: bool = False) -> str:
        users = [u for u in self.users if not live or self.live[u]]
        return users[pick % len(users)]

    def phone(self, user: str, pick: int) -> Phone:
        online = [ph for ph in self.phones[user] if ph.dev]
        return online[pick % len(online)]

    def call(self, phone: Phone, event: str, payload: dict, want: str | tuple | None = None) -> Any:
        """Emit with an ack; the ack is ok with data of the documented Struct, or the error `want` names."""
        assert phone.dev is not None
        ack = self.run(phone.dev.emit(event, payload))
        return self.judge(event, payload, ack, want)

    def judge(self, event: str, payload: dict, ack: Any, want: str | tuple | None) -> Any:
        if want is None:
            assert ack.get("ok") is True, f"{event} {payload!r} -> {ack}"
            msgspec.convert(ack["data"], ACK_TYPES[event], strict=True)
            return ack["data"]
        assert ack.get("ok") is False, f"{event} {payload!r} -> {ack}, expected {want}"
        msgspec.convert(ack, p.ErrorAck, strict=True)
        assert ack["error"]["code"] in ((want,) if isinstance(want, str) else want), (event, payload, ack, want)
        return ack["error"]

    def settle(self, w: Workout) -> None:
        """Every online device of the user has every acked event of the workout, as acked, in seq order."""
        for ph in self.phones[w.user]:
            if ph.dev and w.top:
                self.run(ph.dev.wait_seq(w.wid, w.top))
                ph.absorb()
                known = ph.known.get(w.wid, {})
                for seq, event in w.acked.items():
                    assert known.get(seq, event) == event, (ph.name, seq, known.get(seq), event)

    def sync(self, ph: Phone, w: Workout, since: int) -> list[tuple[str, dict]]:
        reply = self.call(ph, "workout:sync", {"workout_id": w.wid, "since_seq": since})
        assert reply.get("snapshot") is None, "a workout of < 1000 events replays, never a snapshot"
        events = [(e["event"], e["data"]) for e in reply["events"]]
        assert [d["seq"] for _, d in events] == list(range(since + 1, since + 1 + len(events))), events
        for name, data in events:
            check(name, data)
            ph.learn(name, data)
        return events

    def activity(self, room_id: str | None, kind: str, wid: str, set_id: str | None = None) -> None:
        room = next((r for r in self.rooms if r.room_id == room_id), None)
        for user, name in room.present if room else ():
            next(ph for ph in self.phones[user] if ph.name == name).expected[(room_id, kind, wid, set_id)] += 1

    # ---- setup ------------------------------------------------------------------

    @initialize(count=st.integers(2, 3))
    def connect_users(self, count: int) -> None:
        tag = uuid.uuid4().hex[:8]
        for i in range(count):
            user = f"journey-{tag}-{i}"
            self.users.append(user)
            self.phones[user] = [Phone(user, "phone"), Phone(user, "watch")]
            self.live[user], self.workouts[user], self.history[user], self.exercises[user] = None, [], {}, set()
            for ph, url in zip(self.phones[user], self.env.urls, strict=True):  # one device on each process
                assert self.run(ph.connect(url))["active_workout"] is None

    def teardown(self) -> None:
        for phones in self.phones.values():
            for ph in phones:
                if ph.dev:
                    self.run(ph.dev.close())

    # ---- workouts ---------------------------------------------------------------

    @rule(pick=PICK, plan=PLANS, name=st.sampled_from([None, "Push day", "Beintag 🦵", "bad\x00name"]),
          in_room=st.booleans(), room_pick=PICK)
    def start(self, pick: int, plan: list | None, name: str | None, in_room: bool, room_pick: int) -> None:
        user = self.user(pick)
        payload: dict[str, Any] = {"workout_id": new_id()}
        if name is not None:
            payload["name"] = name
        if plan is not None:
            payload["plan"] = plan
        room = self.rooms[room_pick % len(self.rooms)] if in_room and self.rooms else None
        if room:
            payload["room_id"] = room.room_id
        live = self.live[user]
        if has_nul(payload):
            want: Any = "invalid_payload"
        elif live and room and user not in room.members:
            want = ("conflict", "not_found")  # which the server checks first is not documented
        elif live:
            want = "conflict"
        elif room and user not in room.members:
            want = "not_found"
        else:
            want = None
        data = self.call(self.phone(user, pick), "workout:start", payload, want)
        if want == "conflict":
            assert data["details"] == {"workout_id": live.wid}, data
        if want is not None:
            return
        w = Workout(payload["workout_id"], user, payload, started=data, room_id=payload.get("room_id"))
        assert data["seq"] == 1 and data["workout"]["seq"] == 1
        w.check_snapshot(data["workout"])
        w.ack("workout:start", data)
        self.live[user] = w
        self.workouts[user].append(w)
        self.settle(w)
        self.activity(w.room_id, "workout_started", w.wid)

    @precondition(lambda self: any(self.live.values()))
    @rule(pick=PICK, same=st.booleans())
    def start_again(self, pick: int, same: bool) -> None:
        w = self.live[self.user(pick, live=True)]
        if same:  # a retry: the same ack, no second event
            assert self.call(self.phone(w.user, pick), "workout:start", w.start) == w.started
        else:
            self.call(self.phone(w.user, pick), "workout:start", {**w.start, "name": "Another name"}, "conflict")

    @precondition(lambda self: any(self.live.values()))
    @rule(pick=PICK, exercise=st.sampled_from(EXERCISES), weight=WEIGHTS, reps=REPS, kind=KINDS, rpe=RPES,
          offset=OFFSETS, notes=NOTES, both=st.booleans())
    def log_set(self, pick, exercise, weight, reps, kind, rpe, offset, notes, both) -> None:
        w = self.live[self.user(pick, live=True)]
        payload: dict[str, Any] = {"workout_id": w.wid, "set_id": new_id(), "exercise_id": exercise}
        for key, value in (("weight_kg", weight), ("reps", reps), ("rpe", rpe), ("notes", notes)):
            if value is not None:
                payload[key] = value
        if kind != "normal":
            payload["set_type"] = kind
        if offset is not None:
            payload["completed_at"] = now_ms() + offset
        want = "invalid_payload" if has_nul(payload) or (offset or 0) > FUTURE_TOLERANCE_MS else None
        phones = [ph for ph in self.phones[w.user] if ph.dev]
        senders = phones if both else [self.phone(w.user, pick)]
        before = now_ms()
        acks = self.run(asyncio.gather(*(ph.dev.emit("set:complete", payload) for ph in senders)))
        after = now_ms()
        results = [self.judge("set:complete", payload, ack, want) for ack in acks]
        if want:
            return
        data = results[0]
        assert all(r == data for r in results), f"two devices sent one set: {results}"
        at = payload.get("completed_at", data["set"]["completed_at"])
        assert before - 5 <= at <= after + 5 or "completed_at" in payload, (before, at, after)
        record = set_record(payload, at)
        assert data["set"] == record, (data["set"], record)
        w.sets[record["set_id"]] = record
        w.logged[record["set_id"]] = (payload, data)
        w.ack("set:complete", data)
        w.check_stats(data["stats"])
        assert {r["set_id"] for r in data["records"]} <= {s for s, x in w.sets.items() if x["exercise_id"] == exercise}
        self.settle(w)
        self.activity(w.room_id, "set_completed", w.wid, record["set_id"])

    @precondition(lambda self: any(w and w.logged for w in self.live.values()))
    @rule(pick=PICK, which=PICK, conflicting=st.booleans())
    def resend_set(self, pick: int, which: int, conflicting: bool) -> None:
        w = self.live[self.user(pick, live=True)]
        if not w.logged:
            return
        payload, first = list(w.logged.values())[which % len(w.logged)]
        if conflicting:  # the same set_id with other content
            self.call(self.phone(w.user, pick), "set:complete", {**payload, "reps": (payload.get("reps") or 0) + 1},
                      "conflict")
        else:  # an idempotent retry, even of a set deleted since: the same ack, no second event
            assert self.call(self.phone(w.user, pick), "set:complete", payload) == first

    @precondition(lambda self: any(w and w.logged for w in self.live.values()))
    @rule(pick=PICK, which=PICK, patch=PATCH, repeat=st.booleans())
    def update_set(self, pick: int, which: int, patch: dict, repeat: bool) -> None:
        w = self.live[self.user(pick, live=True)]
        if not w.logged:
            return
        set_id = list(w.logged)[which % len(w.logged)]
        if repeat and set_id in w.last_update:
            payload = w.last_update[set_id][0]
        else:
            patch = dict(patch) or {"reps": 7}
            if "completed_at" in patch:
                patch["completed_at"] += now_ms()
            payload = {"workout_id": w.wid, "set_id": set_id, **patch}
        if has_nul(payload) or payload.get("completed_at", 0) > now_ms() + FUTURE_TOLERANCE_MS:
            want: Any = "invalid_payload"
        else:
            want = "not_found" if set_id not in w.sets else None
        data = self.call(self.phone(w.user, pick), "set:update", payload, want)
        if want:
            return
        if w.last_update.get(set_id, (None,))[0] == payload:  # the same change again: the same ack
            assert data == w.last_update[set_id][1]
            return
        record = {**w.sets[set_id], **{k: v for k, v in payload.items() if k not in ("workout_id", "set_id")}}
        assert data["set"] == record, (data["set"], record)
        w.sets[set_id] = record
        w.last_update[set_id] = (payload, data)
        w.ack("set:update", data)
        w.check_stats(data["stats"])
        self.settle(w)

    @precondition(lambda self: any(self.live.values()))
    @rule(pick=PICK, which=PICK, unknown=st.booleans())
    def delete_set(self, pick: int, which: int, unknown: bool) -> None:
        w = self.live[self.user(pick, live=True)]
        set_id = new_id() if unknown or not w.logged else list(w.logged)[which % len(w.logged)]
        payload = {"workout_id": w.wid, "set_id": set_id}
        if set_id in w.deleted:
            # docs: a repeated set:delete gets the same ack, and a delete of a deleted set is not_found
            ack = self.run(self.phone(w.user, pick).dev.emit("set:delete", payload))
            assert ack == {"ok": True, "data": w.deleted[set_id]} or ack["error"]["code"] == "not_found", ack
            return
        data = self.call(self.phone(w.user, pick), "set:delete", payload, None if set_id in w.sets else "not_found")
        if set_id not in w.sets:
            return
        assert (data["set_id"], data["exercise_id"]) == (set_id, w.sets[set_id]["exercise_id"])
        del w.sets[set_id]
        w.deleted[set_id] = data
        w.ack("set:delete", data)
        w.check_stats(data["stats"])
        self.settle(w)

    # ---- rest timers, pause -------------------------------------------------------

    def _rest(self, w: Workout, data: dict) -> None:
        w.rest = {k: data[k] for k in ("status", "started_at", "ends_at", "duration_s", "exercise_id")}
        w.ack("rest:start", data)
        self.settle(w)

    @precondition(lambda self: any(self.live.values()))
    @rule(pick=PICK, duration=st.sampled_from([300, 600.5, 900]), exercise=st.sampled_from([None, *EXERCISES]))
    def rest_start(self, pick: int, duration: float, exercise: str | None) -> None:
        w = self.live[self.user(pick, live=True)]
        payload = {"workout_id": w.wid, "duration_s": duration, **({"exercise_id": exercise} if exercise else {})}
        data = self.call(self.phone(w.user, pick), "rest:start", payload)
        assert (data["status"], data["duration_s"], data["exercise_id"]) == ("running", duration, exercise), data
        assert data["ends_at"] - data["started_at"] == round(duration * 1000), data
        self._rest(w, data)

    @precondition(lambda self: any(self.live.values()))
    @rule(pick=PICK)
    def rest_short(self, pick: int) -> None:
        """A 0.1 s timer: rest:timer finished reaches every online device, once, from either process."""
        w = self.live[self.user(pick, live=True)]
        data = self.call(self.phone(w.user, pick), "rest:start", {"workout_id": w.wid, "duration_s": 0.1})
        self._rest(w, data)
        for ph in self.phones[w.user]:
            if ph.dev:
                name, fired = self.run(ph.dev.wait_seq(w.wid, data["seq"] + 1, timeout=5))
                assert name == "rest:timer" and fired["status"] == "finished", fired
                assert (fired["started_at"], fired["ends_at"]) == (data["started_at"], data["ends_at"])
                assert fired["server_time"] >= fired["ends_at"]
                ph.absorb()
        w.fired += 1
        w.rest = {**w.rest, "status": "finished"}

    @precondition(lambda self: any(self.live.values()))
    @rule(pick=PICK, delta=st.sampled_from([-120, -30, 45, 200, -3600]))
    def rest_adjust(self, pick: int, delta: int) -> None:
        w = self.live[self.user(pick, live=True)]
        running = w.rest is not None and w.rest["status"] == "running"
        if running and w.rest["ends_at"] + delta * 1000 < now_ms() + 20_000:
            delta = -3600  # never near now: the end is clearly past (finished) or clearly ahead
        data = self.call(self.phone(w.user, pick), "rest:adjust", {"workout_id": w.wid, "delta_s": delta},
                         None if running else "conflict")
        if not running:
            return
        if delta == -3600:  # an end in the past finishes it at once
            assert data["status"] == "finished" and data["ends_at"] <= data["server_time"], data
        else:
            assert data["status"] == "running" and data["ends_at"] == w.rest["ends_at"] + delta * 1000, data
            assert data["duration_s"] == float(text((data["ends_at"] - data["started_at"]) / 1000)), data
        assert data["started_at"] == w.rest["started_at"] and data["exercise_id"] == w.rest["exercise_id"]
        self._rest(w, data)

    @precondition(lambda self: any(self.live.values()))
    @rule(pick=PICK)
    def rest_skip(self, pick: int) -> None:
        w = self.live[self.user(pick, live=True)]
        status = w.rest and w.rest["status"]
        want = None if status in ("running", "skipped") else "conflict"
        data = self.call(self.phone(w.user, pick), "rest:skip", {"workout_id": w.wid}, want)
        if status == "skipped":
            assert data == w.skip_ack  # skipping the same timer again repeats the ack
        elif status == "running":
            assert data["status"] == "skipped" and data["ends_at"] == w.rest["ends_at"], data
            w.skip_ack = data
            self._rest(w, data)

    @precondition(lambda self: any(self.live.values()))
    @rule(pick=PICK)
    def pause_or_resume(self, pick: int) -> None:
        w = self.live[self.user(pick, live=True)]
        ph = self.phone(w.user, pick + 1)
        if w.status == "live":
            w.pause_ack = self.call(ph, "workout:pause", {"workout_id": w.wid})
            w.status = "paused"
            w.ack("workout:pause", w.pause_ack)
        elif pick % 2:  # pausing a paused workout repeats the ack
            assert self.call(ph, "workout:pause", {"workout_id": w.wid}) == w.pause_ack
        else:
            data = self.call(ph, "workout:resume", {"workout_id": w.wid})
            assert data["at"] >= w.pause_ack["at"]
            w.status, w.pause_ack = "live", None
            w.ack("workout:resume", data)
        self.settle(w)
