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
from rest.schemas import Records, WorkoutDetail, WorkoutPage

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

    async def start() -> None:
        await asyncio.gather(*(w.start() for w in webs))

    try:
        loop.run_until_complete(start())
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

    def run(self, *coros: Any) -> Any:
        """Run coroutines together on the test's loop; the result of one, or the list of several."""
        async def together() -> list[Any]:
            return await asyncio.gather(*coros)

        results = self.env.loop.run_until_complete(together())
        return results[0] if len(coros) == 1 else results

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

    def sync(self, ph: Phone, w: Workout, since: int, learn: bool = True) -> list[tuple[str, dict]]:
        reply = self.call(ph, "workout:sync", {"workout_id": w.wid, "since_seq": since})
        assert reply.get("snapshot") is None, "a workout of < 1000 events replays, never a snapshot"
        events = [(e["event"], e["data"]) for e in reply["events"]]
        assert [d["seq"] for _, d in events] == list(range(since + 1, since + 1 + len(events))), events
        for name, data in events:
            check(name, data)
            if learn:
                ph.learn(name, data)
        return events

    def activity(self, w: Workout, kind: str, set_id: str | None = None) -> None:
        """room:activity the workout's room gets: every device present in it then receives it."""
        room = next((r for r in self.rooms if r.room_id == w.room_id), None)
        for user, name in room.present if room else ():
            next(ph for ph in self.phones[user] if ph.name == name).expected[
                (w.room_id, w.user, kind, w.wid, set_id)] += 1

    # ---- setup ------------------------------------------------------------------

    @initialize(count=st.integers(2, 3), plans=st.lists(PLANS, min_size=3, max_size=3))
    def connect_users(self, count: int, plans: list) -> None:
        """2-3 users, each with a phone on one process and a watch on the other, each starting a workout."""
        tag = uuid.uuid4().hex[:8]
        for i in range(count):
            user = f"journey-{tag}-{i}"
            self.users.append(user)
            self.phones[user] = [Phone(user, "phone"), Phone(user, "watch")]
            self.live[user], self.workouts[user], self.history[user], self.exercises[user] = None, [], {}, set()
            for ph, url in zip(self.phones[user], self.env.urls, strict=True):  # one device on each process
                assert self.run(ph.connect(url))["active_workout"] is None
            self.start(i, plans[i], "Day one", False, 0)

    @invariant()
    def count_steps(self):
        self.nsteps = getattr(self, "nsteps", 0) + 1

    def teardown(self) -> None:
        import sys
        print("EX", getattr(self, "nsteps", 0), len(self.users), [(len(self.workouts[u]), len(self.history[u]), [len(w.logged) for w in self.workouts[u]]) for u in self.users], len(self.rooms), file=sys.stderr)
        for phones in self.phones.values():
            for ph in phones:
                if ph.dev:
                    self.run(ph.dev.close())

    # ---- workouts ---------------------------------------------------------------

    @rule(pick=PICK, plan=PLANS, name=st.sampled_from([None, "Push day", "Beintag 🦵", "bad\x00name"]),
          in_room=st.booleans(), room_pick=PICK)
    def start_workout(self, pick: int, plan: list | None, name: str | None, in_room: bool, room_pick: int) -> None:
        self.start(pick, plan, name, in_room, room_pick)

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
        self.activity(w, "workout_started")

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
        acks = self.run(*(ph.dev.emit("set:complete", payload) for ph in senders))
        acks = acks if len(senders) > 1 else [acks]
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
        self.activity(w, "set_completed", record["set_id"])

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

    # ---- the end of a workout ------------------------------------------------------

    def end_checks(self, w: Workout) -> None:
        """The whole log, as workout:sync from 0 replays it, is what the model explains, and every online
        device holds exactly it: every event once, none missing."""
        log = self.sync(self.phone(w.user, 0), w, 0, learn=False)
        assert log[-1][1]["seq"] == w.end_ack["seq"], "the end is the last event"
        w.explain(log)
        for ph in self.phones[w.user]:
            if ph.dev:
                assert ph.known.get(w.wid) == {d["seq"]: (n, d) for n, d in log}, ph.name

    @precondition(lambda self: any(self.live.values()))
    @rule(pick=PICK, notes=NOTES)
    def complete(self, pick: int, notes: str | None) -> None:
        w = self.live[self.user(pick, live=True)]
        payload = {"workout_id": w.wid, **({"notes": notes} if notes is not None else {})}
        data = self.call(self.phone(w.user, pick), "workout:complete", payload,
                         "invalid_payload" if has_nul(payload) else None)
        if has_nul(payload):
            return  # nothing changed: the workout is live as it was (later steps see it so)
        summary, sets = data["summary"], w.ordered()
        assert summary["set_count"] == len(sets), (summary, sets)
        assert summary["exercise_count"] == len({s["exercise_id"] for s in sets}), summary
        assert close(summary["total_volume_kg"], sum(x["weight_kg"] * x["reps"] for x in sets if x["set_type"] !=
                     "warmup" and x["weight_kg"] is not None and x["reps"] is not None), 0.002), summary
        assert {r["set_id"] for r in summary["prs"]} <= set(w.sets), summary
        assert self.call(self.phone(w.user, pick + 1), "workout:complete", payload) == data  # a retry
        w.status, w.end_ack, w.notes = "completed", data, notes
        w.ack("workout:complete", data)
        self.live[w.user] = None
        self.history[w.user][w.wid] = w
        self.exercises[w.user] |= {s["exercise_id"] for s in sets}
        self.settle(w)
        self.end_checks(w)
        self.activity(w, "workout_completed")
        self.check_history(w.user, w)

    @precondition(lambda self: any(self.live.values()))
    @rule(pick=PICK)
    def discard(self, pick: int) -> None:
        w = self.live[self.user(pick, live=True)]
        data = self.call(self.phone(w.user, pick), "workout:discard", {"workout_id": w.wid})
        assert self.call(self.phone(w.user, pick + 1), "workout:discard", {"workout_id": w.wid}) == data
        w.status, w.end_ack = "discarded", data
        w.ack("workout:discard", data)
        self.live[w.user] = None
        self.settle(w)
        self.end_checks(w)
        assert self.rest_get(w.user, f"/api/v1/workouts/{w.wid}").status_code == 404

    @precondition(lambda self: any(w.end_ack for ws in self.workouts.values() for w in ws))
    @rule(which=PICK, pick=PICK, op=st.sampled_from(
        ["set:complete", "set:update", "workout:pause", "rest:start", "workout:complete", "workout:discard"]))
    def act_on_ended(self, which: int, pick: int, op: str) -> None:
        """Events for an ended workout are a conflict naming its status; repeating its end repeats the ack."""
        ended = [w for ws in self.workouts.values() for w in ws if w.end_ack]
        w = ended[which % len(ended)]
        payload: dict[str, Any] = {"workout_id": w.wid}
        if op == "set:complete":
            payload.update(set_id=new_id(), exercise_id="bench", reps=5)
        elif op == "set:update":
            payload.update(set_id=next(iter(w.sets), new_id()), notes=f"late {new_id()}")
        elif op == "rest:start":
            payload["duration_s"] = 60
        elif op == "workout:complete" and w.notes is not None:
            payload["notes"] = w.notes
        ph = self.phone(w.user, pick)
        if (op, w.status) in (("workout:complete", "completed"), ("workout:discard", "discarded")):
            assert self.call(ph, op, payload) == w.end_ack
        elif op == "set:update" and not w.sets:
            self.call(ph, op, payload, "not_found")
        else:
            assert self.call(ph, op, payload, "conflict")["details"] == {"status": w.status}

    @rule(pick=PICK, other=PICK, unknown=st.booleans(), op=st.sampled_from(
        ["set:complete", "workout:pause", "workout:sync", "workout:complete", "workout:discard", "rest:skip"]))
    def foreign_or_unknown(self, pick: int, other: int, unknown: bool, op: str) -> None:
        """Another user's workout, live or ended, is not_found for every event, as is an id never used."""
        user = self.user(pick)
        theirs = [w for u in self.users if u != user for w in self.workouts[u]]
        w = None if unknown or not theirs else theirs[other % len(theirs)]
        payload: dict[str, Any] = {"workout_id": w.wid if w else new_id()}
        if op == "set:complete":
            payload.update(set_id=next(iter(w.logged), new_id()) if w else new_id(), exercise_id="row", reps=3)
        elif op == "workout:sync":
            payload["since_seq"] = 0
        self.call(self.phone(user, pick), op, payload, "not_found")
        if w:
            assert self.rest_get(user, f"/api/v1/workouts/{w.wid}").status_code == 404

    # ---- devices come and go ---------------------------------------------------------

    @precondition(lambda self: any(self.workouts.values()))
    @rule(pick=PICK, which=PICK, back=st.integers(0, 4))
    def resync(self, pick: int, which: int, back: int) -> None:
        """workout:sync from a seq the device has: the events after it, each as the device got it."""
        user = self.user(pick)
        if not self.workouts[user]:
            return
        w = self.workouts[user][which % len(self.workouts[user])]
        ph = self.phone(user, pick)
        ph.absorb()
        have = ph.contiguous(w.wid)
        assert len(self.sync(ph, w, max(0, have - back))) >= min(back, have)

    @rule(pick=PICK, which=PICK)
    def disconnect(self, pick: int, which: int) -> None:
        user = self.user(pick)
        online = [ph for ph in self.phones[user] if ph.dev]
        if len(online) < 2:
            return  # one device stays online to act for the user
        ph = online[which % len(online)]
        ph.absorb()
        self.run(ph.dev.close())
        ph.dev = None
        for room in self.rooms:
            room.present.discard((user, ph.name))

    @rule(pick=PICK, which=PICK, server=st.integers(0, 1))
    def reconnect(self, pick: int, which: int, server: int) -> None:
        """Back online on either process: session:ready has the live workout as the model has it, and
        workout:sync from the last seq the device applied fills in everything it missed, once."""
        user = self.user(pick)
        offline = [ph for ph in self.phones[user] if not ph.dev]
        if not offline:
            return
        ph = offline[which % len(offline)]
        ready = self.run(ph.connect(self.env.urls[server]))
        live = self.live[user]
        if live is None:
            assert ready["active_workout"] is None, ready
        else:
            live.check_snapshot(ready["active_workout"])
        for w in self.workouts[user]:
            self.sync(ph, w, ph.contiguous(w.wid))
            have = ph.contiguous(w.wid)
            assert have >= w.top and (not w.end_ack or have == w.end_ack["seq"]), (have, w.top)
        ph.absorb()

    @rule(pick=PICK)
    def check_active(self, pick: int) -> None:
        user = self.user(pick)
        response = self.rest_get(user, "/api/v1/workouts/active")
        if self.live[user] is None:
            assert response.status_code == 404 and response.json()["code"] == "not_found", response.text
        else:
            assert response.status_code == 200, response.text
            self.live[user].check_snapshot(response.json())

    # ---- group rooms ---------------------------------------------------------------------

    def check_joined(self, data: dict, room: Room, user: str) -> None:
        assert data["room"] == {"room_id": room.room_id, "name": data["room"]["name"], "invite_code": room.code,
                                "owner_id": room.owner}, data
        presence = {e["user_id"]: e for e in data["presence"]}
        assert set(presence) <= room.members, (presence, room.members)
        live = self.live[user]
        assert presence[user]["device_count"] >= 1
        assert presence[user]["workout_id"] == (live.wid if live and live.room_id == room.room_id else None), data

    @rule(pick=PICK, name=st.sampled_from(["Tuesday crew", "nul\x00room"]))
    def room_create(self, pick: int, name: str) -> None:
        user = self.user(pick)
        ph = self.phone(user, pick)
        data = self.call(ph, "room:create", {"name": name}, "invalid_payload" if has_nul({"name": name}) else None)
        if has_nul({"name": name}):
            return
        assert data["room"]["name"] == name and data["room"]["owner_id"] == user
        room = Room(data["room"]["room_id"], data["room"]["invite_code"], user, {user}, {(user, ph.name)})
        self.check_joined(data, room, user)
        self.rooms.append(room)

    @precondition(lambda self: self.rooms)
    @rule(pick=PICK, which=PICK, how=st.sampled_from(["code", "room_id", "wrong code"]))
    def room_join(self, pick: int, which: int, how: str) -> None:
        user = self.user(pick)
        ph, room = self.phone(user, pick), self.rooms[which % len(self.rooms)]
        if how == "code":
            payload, want = {"invite_code": room.code}, None
        elif how == "room_id":  # members only (for example after reconnecting)
            payload, want = {"room_id": room.room_id}, None if user in room.members else "not_found"
        else:
            payload = {"invite_code": f"wrong-{uuid.uuid4().hex}"}
            want = "rate_limited" if self.wrong_codes[user] >= 10 else "not_found"
            self.wrong_codes[user] += 1
        data = self.call(ph, "room:join", payload, want)
        if want is None:
            room.members.add(user)
            room.present.add((user, ph.name))
            self.check_joined(data, room, user)

    @precondition(lambda self: self.rooms)
    @rule(pick=PICK, which=PICK)
    def room_leave(self, pick: int, which: int) -> None:
        user = self.user(pick)
        room = self.rooms[which % len(self.rooms)]
        data = self.call(self.phone(user, pick), "room:leave", {"room_id": room.room_id},
                         None if user in room.members else "not_found")
        if user in room.members:
            assert data == {"room_id": room.room_id}
            room.members.discard(user)
            room.present = {(u, n) for u, n in room.present if u != user}

    @invariant()
    def room_activity_reaches_exactly_the_present_devices(self) -> None:
        def got(ph: Phone) -> Counter:
            if ph.dev:
                ph.absorb()
            return Counter((a["room_id"], a["user_id"], a["type"], a["data"]["workout_id"],
                            a["data"]["set"]["set_id"] if a["type"] == "set_completed" else None)
                           for a in ph.activity if a["type"] != "pr_achieved")

        for phones in self.phones.values():
            for ph in phones:
                if ph.dev and ph.expected:
                    self.run(ph.dev._until(lambda ph=ph: True if not ph.expected - got(ph) else None, 5,
                                           lambda ph=ph: f"{ph.user}/{ph.name}: {ph.expected - got(ph)} missing"))
                assert got(ph) == ph.expected, (ph.user, ph.name, got(ph), ph.expected)

    # ---- REST: history and records ---------------------------------------------------------

    def rest_get(self, user: str, path: str, method: str = "GET") -> httpx.Response:
        return self.run(self.env.http.request(method, self.url() + path,
                                              headers={"Authorization": f"Bearer {token(user)}"}))

    def check_item(self, item: dict, w: Workout) -> None:
        sets, summary = w.ordered(), w.end_ack["summary"]
        assert (item["name"], item["notes"], item["room_id"]) == (w.start.get("name"), w.notes, w.room_id), item
        assert item["set_count"] == len(sets) and item["exercise_count"] == summary["exercise_count"], item
        assert close(item["total_volume_kg"], summary["total_volume_kg"], 0.002), (item, summary)
        assert item["duration_s"] == summary["duration_s"], (item, summary)
        assert item["started_at"] == w.started["workout"]["started_at"] <= item["completed_at"], item

    def check_history(self, user: str, just: Workout | None = None) -> None:
        """GET /workouts is every completed workout, newest first; GET /workouts/{id} the one just completed
        with its sets (each acked set once, as last edited, none deleted) and its plan as sent; the records
        of every exercise are the best of the stored sets."""
        response = self.rest_get(user, "/api/v1/workouts?limit=100")
        assert response.status_code == 200, response.text
        page = msgspec.convert(response.json(), WorkoutPage, strict=True)
        items = response.json()["data"]
        assert {i["workout_id"] for i in items} == set(self.history[user]) and page.next_cursor is None, items
        order = [(i["completed_at"], i["workout_id"]) for i in items]
        assert order == sorted(order, reverse=True), order
        for item in items:
            self.check_item(item, self.history[user][item["workout_id"]])
        if just:
            response = self.rest_get(user, f"/api/v1/workouts/{just.wid}")
            assert response.status_code == 200, response.text
            detail = response.json()
            msgspec.convert(detail, WorkoutDetail, strict=True)
            self.check_item(detail, just)
            sent = just.start.get("plan")
            assert (detail["plan"] is None) == (sent is None), (detail["plan"], sent)
            assert plan_items(detail["plan"]) == plan_items(sent), (detail["plan"], sent)
            assert detail["sets"] == just.ordered(), (detail["sets"], just.ordered())
        stored = {(w.wid, s["set_id"]): s for w in self.history[user].values() for s in w.sets.values()}
        for exercise in sorted(self.exercises[user]):
            response = self.rest_get(user, f"/api/v1/exercises/{exercise}/records")
            assert response.status_code == 200, response.text
            msgspec.convert(response.json(), Records, strict=True)
            got = {}
            for r in response.json()["data"]:
                slot = (r["type"], text(r["weight_kg"]) if r["type"] == "max_reps" else None)
                assert slot not in got, f"two {slot} records for {exercise}"
                got[slot] = r["value"]
                held = stored.get((r["workout_id"], r["set_id"]))  # a stored set of this exercise holds it
                assert held and held["exercise_id"] == exercise, (r, exercise)
                assert close(record_value(r["type"], held), r["value"], 0.0101), (r, held)
            want = records_of([s for s in stored.values() if s["exercise_id"] == exercise])
            assert got.keys() == want.keys(), (exercise, got, want)
            for slot, value in want.items():
                assert close(got[slot], value, 0.0101 if slot[0] == "est_1rm" else 1e-9), (exercise, slot, got, want)

    @precondition(lambda self: any(self.history.values()))
    @rule(pick=PICK, which=PICK)
    def delete_from_history(self, pick: int, which: int) -> None:
        """DELETE a completed workout: gone from history, and records derived again from what remains."""
        user = [u for u in self.users if self.history[u]][pick % sum(1 for u in self.users if self.history[u])]
        wid = list(self.history[user])[which % len(self.history[user])]
        assert self.rest_get(user, f"/api/v1/workouts/{wid}", "DELETE").status_code == 204
        del self.history[user][wid]
        assert self.rest_get(user, f"/api/v1/workouts/{wid}").status_code == 404
        assert self.rest_get(user, f"/api/v1/workouts/{wid}", "DELETE").status_code == 404
        self.check_history(user)


def test_whole_workouts_of_several_users_on_two_processes(journey_env: Env) -> None:
    Journeys.env = journey_env
    case = Journeys.TestCase
    case.settings = settings(max_examples=20, stateful_step_count=30, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                    HealthCheck.filter_too_much])
    case().runTest()
