"""Whole workouts of 2-3 users, end to end, against a model (tests/journey_model.py).

A hypothesis state machine drives real Socket.IO clients (websocket) of each user on both of two
`web:` processes of the Procfile (one Redis keyspace, one Postgres database): workouts with and
without plans, sets logged (back-dated, retried, sent from both devices at once, in bursts), edited
and deleted (also at once from two devices), rest timers, pause, devices dropping and coming back
with workout:sync, completion (also raced by a discard), group rooms, deletes from history. Every
ack is checked against docs/protocol.md; every device's events (each decoded strictly, once, in seq
order, gapless once synced, each ack the event at its seq, every pr:achieved where a record was
beaten, nothing the model cannot explain); after each completion the REST history, the workout with
its sets and plan, the records, each exercise's history and the volume.
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

from realtime.core import protocol as p
from rest import schemas

from .clients import Device, check, token
from .journey_model import (
    FUTURE_TOLERANCE_MS,
    Bases,
    Room,
    Workout,
    check_standing,
    has_nul,
    now_ms,
    records_of,
    text,
    volume_of,
)
from .servers import TEST_SECRET, ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.every_redis]

EXERCISES = st.sampled_from(["bench", "squat", "row", "press"])
NOTES = st.sampled_from([None, None, "felt strong", "Kniebeuge ✓ 💪", "bad\x00note"])
PLANS = st.none() | st.lists(st.fixed_dictionaries({"exercise_id": EXERCISES}, optional={
    "sets": st.integers(1, 5), "reps": st.integers(1, 12), "weight_kg": st.sampled_from([20, 42.5, 60]),
    "rest_s": st.sampled_from([60, 90.5])}), max_size=6)
WEIGHTS = st.sampled_from([None, 0, 20, 42.5, 60, 80.25, 100, 102.5])
REPS = st.sampled_from([None, 0, 1, 5, 8, 12])
KINDS = st.sampled_from(["normal", "warmup", "drop", "failure"])
# completed_at from now: None (the server's clock), back-dated as if logged offline, a little ahead (a
# device clock running fast), or too far ahead (refused)
SET = {"pick": st.integers(0, 1000), "exercise": EXERCISES, "weight": WEIGHTS, "reps": REPS, "kind": KINDS,
       "rpe": st.sampled_from([None, 6, 7.5, 9, 10]), "notes": NOTES, "both": st.booleans(),
       "offset": st.sampled_from([None, None, -90_000, -3_600_000, -2 * 86_400_000, 60_000, 10 * 60_000])}


def patches(nul: bool) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({}, optional={
        "reps": st.sampled_from([None, 0, 3, 10]), "weight_kg": st.sampled_from([None, 25, 61.5, 110]),
        "rpe": st.sampled_from([None, 8, 9.5]), "set_type": KINDS, "notes": NOTES if nul else st.just("edited"),
        "exercise_id": EXERCISES, "completed_at": st.sampled_from([-120_000, -7_200_000, *([600_000] * nul)])})


PICK = st.integers(0, 1000)
ACK_TYPES = {name: ack for name, (_, ack) in p.CLIENT_EVENTS.items()}
REST_KEYS = ("status", "started_at", "ends_at", "duration_s", "exercise_id")


def has_live(self: Journeys) -> bool:
    return any(self.live.values())


def new_id() -> str:
    return str(uuid.uuid4())


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
           # events go back to back from a few devices; the rate limit is not under test here
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


class Phone:
    """One device of a user: its connection, and every workout event it has applied (live or synced)."""

    def __init__(self, user: str, name: str) -> None:
        self.user, self.name = user, name
        self.dev: Device | None = None
        self.seen = 0  # events of this connection already absorbed
        self.stream: dict[str, list[int]] = {}  # this connection's live seqs per workout
        self.known: dict[str, dict[int, tuple[str, dict]]] = {}  # workout -> seq -> (event, payload)
        self.activity: list[dict] = []  # room:activity received, every connection
        self.expected: Counter = Counter()  # room:activity that must have arrived

    async def connect(self, url: str) -> dict:
        self.dev = await Device().connect(url, {"token": token(self.user), "device_id": self.name})
        self.seen, self.stream = 0, {}
        (ready,) = await self.dev.wait_for("session:ready")
        assert (ready["user_id"], ready["device_id"]) == (self.user, self.name), ready
        return ready

    def absorb(self) -> None:
        assert self.dev is not None
        for name, data in self.dev.events[self.seen:]:
            check(name, data)  # every event decodes strictly with its Struct
            if name == "room:activity":
                self.activity.append(data)
            elif "seq" in data:  # a connection gets each event of a workout once, in seq order, none skipped
                stream = self.stream.setdefault(data["workout_id"], [])
                assert not stream or data["seq"] == stream[-1] + 1, f"{self.name}: {data['seq']} after {stream}"
                stream.append(data["seq"])
                self.learn(name, data)
        self.seen = len(self.dev.events)

    def learn(self, name: str, data: dict) -> None:
        known = self.known.setdefault(data["workout_id"], {})
        assert known.get(data["seq"], (name, data)) == (name, data), (known[data["seq"]], name, data)
        known[data["seq"]] = (name, data)

    async def until(self, found: Any, what: str, timeout: float = 5) -> Any:
        assert self.dev is not None
        return await self.dev._until(lambda: (self.absorb(), found())[1], timeout, lambda: f"{self.name}: {what}")

    async def has(self, wid: str, seq: int) -> tuple[str, dict]:
        """The event at `seq` of the workout, once this device has it (live, or from a sync)."""
        return await self.until(lambda: self.known.get(wid, {}).get(seq), f"no {seq} in {self.known.get(wid)}")

    async def fired(self, wid: str, after: int) -> dict:
        """The rest:timer finished after seq `after`, once this device has it."""
        return await self.until(lambda: next((d for q, (n, d) in sorted(self.known.get(wid, {}).items()) if q > after
                                              and n == "rest:timer" and d["status"] == "finished"), None),
                                f"no finished timer after {after}")

    def applied(self, wid: str) -> int:
        """The last seq of the workout this device applied with none missing before it."""
        known, n = self.known.get(wid, {}), 0
        while n + 1 in known:
            n += 1
        return n


class Journeys(RuleBasedStateMachine):
    env: Env

    def __init__(self) -> None:
        super().__init__()
        self.users: list[str] = []
        self.phones: dict[str, list[Phone]] = {}
        self.live: dict[str, Workout | None] = {}
        self.workouts: dict[str, list[Workout]] = {}  # every workout of the user, in start order
        self.history: dict[str, dict[str, Workout]] = {}  # completed, not deleted
        self.exercises: dict[str, set[str]] = {}  # every exercise the user ever stored
        self.rooms: list[Room] = []
        self.wrong_codes: Counter = Counter()
        self.turn = 0

    # ---- plumbing ------------------------------------------------------------------------

    def run(self, *coros: Any) -> Any:
        """Run coroutines at once on the test's loop: the result of one, or the list of several."""
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

    def live_one(self, pick: int) -> Workout:
        return self.live[self.user(pick, live=True)]  # type: ignore[return-value]

    def phone(self, user: str, pick: int) -> Phone:
        online = [ph for ph in self.phones[user] if ph.dev]
        return online[pick % len(online)]

    def call(self, phone: Phone, event: str, payload: dict, want: str | tuple | None = None) -> Any:
        assert phone.dev is not None
        return self.judge(event, payload, self.run(phone.dev.emit(event, payload)), want)

    def judge(self, event: str, payload: dict, ack: Any, want: str | tuple | None) -> Any:
        """The ack is ok with data of the documented Struct, or the error `want` names: its data or error."""
        if want is None:
            assert ack.get("ok") is True, f"{event} {payload!r} -> {ack}"
            msgspec.convert(ack["data"], ACK_TYPES[event], strict=True)
            return ack["data"]
        assert ack.get("ok") is False, f"{event} {payload!r} -> {ack}, expected {want}"
        msgspec.convert(ack, p.ErrorAck, strict=True)
        assert ack["error"]["code"] in ((want,) if isinstance(want, str) else want), (event, payload, ack, want)
        return ack["error"]

    def bases(self, user: str) -> Bases:
        """The user's standing records per exercise: the best of every stored set."""
        stored: dict[str, list[dict]] = {}
        for s in (s for w in self.history[user].values() for s in w.sets.values()):
            stored.setdefault(s["exercise_id"], []).append(s)
        return {exercise: records_of(sets) for exercise, sets in stored.items()}

    def settle(self, w: Workout) -> None:
        """Every online device of the user has every event of the workout the model knows, as acked."""
        for ph in self.phones[w.user]:
            if ph.dev and w.top:
                self.run(ph.has(w.wid, w.top))
                known = ph.known[w.wid]
                assert all(known.get(seq, event) == event for seq, event in w.acked.items()), ph.name
                assert all(known[seq][0] == "pr:achieved" for seq in w.prs), (ph.name, w.prs)

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

    def catch_up(self, ph: Phone) -> None:
        """workout:sync of each of the user's workouts from the last seq the device applied: then it has
        every event of each, once."""
        for w in self.workouts[ph.user]:
            self.sync(ph, w, ph.applied(w.wid))
            ph.absorb()
            have = ph.applied(w.wid)
            assert len(ph.known[w.wid]) == have >= w.top, (ph.name, sorted(ph.known[w.wid]), w.top)
            assert not w.end_ack or have == w.end_ack["seq"], (have, w.end_ack)

    def activity(self, w: Workout, kind: str, set_id: str | None = None) -> None:
        """room:activity of the workout's room: every device present in the room then must receive it."""
        room = next((r for r in self.rooms if r.room_id == w.room_id), None)
        for user, name in room.present if room else ():
            next(ph for ph in self.phones[user] if ph.name == name).expected[
                (w.room_id, w.user, kind, w.wid, set_id)] += 1

    def rest_get(self, user: str, path: str, method: str = "GET") -> httpx.Response:
        return self.run(self.env.http.request(method, self.url() + path,
                                              headers={"Authorization": f"Bearer {token(user)}"}))

    def logged(self, w: Workout, payload: dict, data: dict) -> None:
        """A set:complete acked (see Workout.log); the room hears of the set, and of a record it beat."""
        beat = w.log(payload, data, self.bases(w.user))
        self.activity(w, "set_completed", payload["set_id"])
        if beat:
            self.activity(w, "pr_achieved", payload["set_id"])

    def ended(self, w: Workout, event: str, data: dict, notes: str | None) -> None:
        """The workout ended: its whole log, as workout:sync from 0 replays it, is what the model explains, and
        every online device holds exactly it. A completed one is in the history as the model has it."""
        w.status, w.end_ack, w.notes = "completed" if event == "workout:complete" else "discarded", data, notes
        w.ack(event, data)
        self.live[w.user] = None
        self.settle(w)
        log = self.sync(self.phone(w.user, 0), w, 0, learn=False)
        assert log[-1][1]["seq"] == data["seq"], "the end is the last event"
        w.explain(log)
        for ph in self.phones[w.user]:
            assert not ph.dev or ph.known.get(w.wid) == {d["seq"]: (n, d) for n, d in log}, ph.name
        if w.status == "discarded":
            assert self.rest_get(w.user, f"/api/v1/workouts/{w.wid}").status_code == 404
            return
        w.check_summary(data["summary"], self.bases(w.user))
        self.history[w.user][w.wid] = w
        self.exercises[w.user] |= {s["exercise_id"] for s in w.sets.values()}
        self.activity(w, "workout_completed")
        self.check_history(w.user, w)

    # ---- starting -------------------------------------------------------------------------

    @initialize(count=st.integers(2, 3), plans=st.lists(PLANS, min_size=3, max_size=3))
    def connect_users(self, count: int, plans: list) -> None:
        """2-3 users, each with a phone on one process and a watch on the other, each starting a workout."""
        tag = uuid.uuid4().hex[:8]
        for i in range(count):
            user = f"journey-{tag}-{i}"
            self.users.append(user)
            self.phones[user] = [Phone(user, "phone"), Phone(user, "watch")]
            self.live[user], self.workouts[user], self.history[user], self.exercises[user] = None, [], {}, set()
            for ph, url in zip(self.phones[user], self.env.urls, strict=True):
                assert self.run(ph.connect(url))["active_workout"] is None
            self.start_workout(i, plans[i], "Day one", False, 0, False)

    def teardown(self) -> None:
        for ph in (ph for phones in self.phones.values() for ph in phones if ph.dev):
            self.run(ph.dev.close())

    @rule(pick=PICK, plan=PLANS, name=st.sampled_from([None, "Push day", "Beintag 🦵", "bad\x00name"]),
          in_room=st.booleans(), room_pick=PICK, again=st.booleans())
    def start_workout(self, pick: int, plan: list | None, name: str | None, in_room: bool, room_pick: int,
                      again: bool) -> None:
        user = self.user(pick)
        live, ph = self.live[user], self.phone(user, pick)
        if live and again:  # workout:start again: a retry gets the same ack; other content is a conflict
            if pick % 2:
                assert self.call(ph, "workout:start", live.start) == live.started
            else:
                self.call(ph, "workout:start", {**live.start, "name": "Other"}, "conflict")
            return
        room = self.rooms[room_pick % len(self.rooms)] if in_room and self.rooms else None
        payload = {k: v for k, v in (("workout_id", new_id()), ("name", name), ("plan", plan),
                                     ("room_id", room and room.room_id)) if v is not None}
        if has_nul(payload):
            want: Any = "invalid_payload"
        elif live:  # one live workout per user (and not a member of the room: which is checked first is open)
            want = "conflict" if not room or user in room.members else ("conflict", "not_found")
        else:
            want = "not_found" if room and user not in room.members else None
        data = self.call(ph, "workout:start", payload, want)
        if want == "conflict":
            assert data["details"] == {"workout_id": live.wid}, data
        if want is not None:
            return
        w = Workout(payload["workout_id"], user, payload, data)
        assert data["seq"] == 1
        w.check_snapshot(data["workout"], self.bases(user))
        w.ack("workout:start", data)
        self.live[user] = w
        self.workouts[user].append(w)
        self.settle(w)
        self.activity(w, "workout_started")

    # ---- sets -----------------------------------------------------------------------------

    def _log_set(self, pick, exercise, weight, reps, kind, rpe, offset, notes, both) -> None:
        w = self.live_one(pick)
        payload = {k: v for k, v in (
            ("workout_id", w.wid), ("set_id", new_id()), ("exercise_id", exercise), ("weight_kg", weight),
            ("reps", reps), ("rpe", rpe), ("notes", notes), ("set_type", None if kind == "normal" else kind),
            ("completed_at", None if offset is None else now_ms() + offset)) if v is not None}
        want = "invalid_payload" if has_nul(payload) or (offset or 0) > FUTURE_TOLERANCE_MS else None
        senders = [ph for ph in self.phones[w.user] if ph.dev] if both else [self.phone(w.user, pick)]
        before = now_ms()
        acks = self.run(*(ph.dev.emit("set:complete", payload) for ph in senders), asyncio.sleep(0))[:-1]
        after = now_ms()
        results = [self.judge("set:complete", payload, ack, want) for ack in acks]
        if want:
            return
        assert all(r == results[0] for r in results), f"one set sent from two devices at once: {results}"
        assert "completed_at" in payload or before - 5 <= results[0]["set"]["completed_at"] <= after + 5
        self.logged(w, payload, results[0])
        self.settle(w)

    # sets are most of a workout: two rules log them, so that they are drawn more often
    log_set = precondition(has_live)(rule(**SET)(_log_set))
    log_another_set = precondition(has_live)(rule(**SET)(_log_set))

    @precondition(has_live)
    @rule(pick=PICK, sets=st.lists(st.tuples(EXERCISES, WEIGHTS, REPS, KINDS, st.sampled_from(
        [None, -60_000, -3_600_000])), min_size=2, max_size=6), timer=st.booleans(), rejoin=st.booleans())
    def burst(self, pick: int, sets: list[tuple], timer: bool, rejoin: bool) -> None:
        """Sets logged at once from every online device, on both processes (a 0.05 s rest timer finishing
        among them, an offline device coming back meanwhile): each lands once, seq stays gapless, and each
        ack's stats and records are those of the sets applied before it, in seq order."""
        w = self.live_one(pick)
        online = [ph for ph in self.phones[w.user] if ph.dev]
        back = next((ph for ph in self.phones[w.user] if not ph.dev), None) if rejoin else None
        if timer:
            running = self.call(online[0], "rest:start", {"workout_id": w.wid, "duration_s": 0.05})
            w.rest = {k: running[k] for k in REST_KEYS}
            w.ack("rest:start", running)
        payloads = [{"workout_id": w.wid, "set_id": new_id(), "exercise_id": exercise, "set_type": kind,
                     **{k: v for k, v in (("weight_kg", weight), ("reps", reps)) if v is not None},
                     **({"completed_at": now_ms() + offset} if offset else {})}
                    for exercise, weight, reps, kind, offset in sets]
        results = self.run(*(online[i % len(online)].dev.emit("set:complete", pl) for i, pl in enumerate(payloads)),
                           *([back.connect(self.url())] if back else []))
        datas = [self.judge("set:complete", pl, ack, None) for pl, ack in zip(payloads, results, strict=False)]
        for payload, data in sorted(zip(payloads, datas, strict=True), key=lambda pd: pd[1]["seq"]):
            self.logged(w, payload, data)
        if back:
            check("session:ready", results[-1])
            self.catch_up(back)
        self.settle(w)
        if timer:  # it finished exactly once, at one seq for every device
            finished = [self.run(ph.fired(w.wid, running["seq"])) for ph in self.phones[w.user] if ph.dev]
            assert all(f == finished[0] for f in finished), finished
            assert {k: finished[0][k] for k in REST_KEYS} == {**w.rest, "status": "finished"}, (finished, w.rest)
            w.fired += 1
            w.rest["status"] = "finished"

    @precondition(lambda self: any(w and w.logged for w in self.live.values()))
    @rule(pick=PICK, which=PICK, conflicting=st.booleans())
    def resend_set(self, pick: int, which: int, conflicting: bool) -> None:
        w = self.live_one(pick)
        if not w.logged:
            return
        payload, first = list(w.logged.values())[which % len(w.logged)]
        if conflicting:  # the same set_id with other content
            other = {**payload, "reps": (payload.get("reps") or 0) + 1}
            self.call(self.phone(w.user, pick), "set:complete", other, "conflict")
        else:  # an idempotent retry, even of a set deleted since: the same ack, no second event
            assert self.call(self.phone(w.user, pick), "set:complete", payload) == first

    @precondition(lambda self: any(w and w.logged for w in self.live.values()))
    @rule(pick=PICK, which=PICK, patch=patches(nul=True), repeat=st.booleans())
    def update_set(self, pick: int, which: int, patch: dict, repeat: bool) -> None:
        w = self.live_one(pick)
        if not w.logged:
            return
        set_id = list(w.logged)[which % len(w.logged)]
        if repeat and set_id in w.last_update:  # the same change again: the same ack
            payload = w.last_update[set_id][0]
        else:
            patch = dict(patch) or {"reps": 7}
            if "completed_at" in patch:
                patch["completed_at"] += now_ms()
            payload = {"workout_id": w.wid, "set_id": set_id, **patch}
        if has_nul(payload) or payload.get("completed_at", 0) > now_ms() + FUTURE_TOLERANCE_MS:
            want: Any = "invalid_payload"
        else:
            want = "not_found" if set_id not in w.sets else None  # a deleted set
        data = self.call(self.phone(w.user, pick), "set:update", payload, want)
        if want:
            return
        if w.last_update.get(set_id, (None,))[0] == payload:
            assert data == w.last_update[set_id][1]
            return
        w.edit(payload, data, self.bases(w.user))
        self.settle(w)

    @precondition(has_live)
    @rule(pick=PICK, which=PICK, unknown=st.booleans())
    def delete_set(self, pick: int, which: int, unknown: bool) -> None:
        w = self.live_one(pick)
        set_id = new_id() if unknown or not w.logged else list(w.logged)[which % len(w.logged)]
        payload = {"workout_id": w.wid, "set_id": set_id}
        if set_id in w.deleted:
            # docs: a repeated set:delete gives its ack again
            ack = self.run(self.phone(w.user, pick).dev.emit("set:delete", payload))
            assert ack == {"ok": True, "data": w.deleted[set_id]}, ack
            return
        data = self.call(self.phone(w.user, pick), "set:delete", payload, None if set_id in w.sets else "not_found")
        if set_id in w.sets:
            w.drop(set_id, data, self.bases(w.user))
            self.settle(w)

    @precondition(lambda self: any(w and w.sets for w in self.live.values()))
    @rule(pick=PICK, which=PICK, first=patches(nul=False), second=patches(nul=False), delete=st.booleans())
    def race(self, pick: int, which: int, first: dict, second: dict, delete: bool) -> None:
        """Two devices change one set at once, on both processes: an edit against an edit, or against a
        delete. The server picks an order (seq); the acks and the set are what that order makes."""
        w = self.live_one(pick)
        if not w.sets:
            return
        set_id = list(w.sets)[which % len(w.sets)]
        edit = {"workout_id": w.wid, "set_id": set_id, **(first or {"reps": 4})}
        other = {"workout_id": w.wid, "set_id": set_id, **(second or {"reps": 6})}
        for patch in (edit, other):
            if "completed_at" in patch:
                patch["completed_at"] += now_ms()
        if w.last_update.get(set_id, (None,))[0] in (edit, other) or (edit == other and not delete):
            return  # a repeat of the last change is acked as that change (update_set checks it)
        devices = [ph for ph in self.phones[w.user] if ph.dev] * 2
        acks = self.run(devices[0].dev.emit("set:update", edit),
                        devices[1].dev.emit("set:delete" if delete else "set:update",
                                            {"workout_id": w.wid, "set_id": set_id} if delete else other))
        if delete and not acks[0]["ok"]:  # the delete came first
            self.judge("set:update", edit, acks[0], "not_found")
            w.drop(set_id, self.judge("set:delete", other, acks[1], None), self.bases(w.user))
        else:
            datas = [self.judge("set:update", edit, acks[0], None),
                     self.judge("set:delete" if delete else "set:update", other, acks[1], None)]
            for payload, data in sorted(zip((edit, other), datas, strict=True), key=lambda pd: pd[1]["seq"]):
                if delete and payload is other:
                    w.drop(set_id, data, self.bases(w.user))
                else:
                    w.edit(payload, data, self.bases(w.user))
        self.settle(w)

    # ---- rest timers, pause -------------------------------------------------------------------

    @precondition(has_live)
    @rule(pick=PICK, op=st.sampled_from(["start", "short", "adjust", "skip"]), exercise=st.sampled_from(
        [None, "bench", "row"]), duration=st.sampled_from([300, 600.5, 900]), delta=st.sampled_from([-120, 45, -3600]))
    def rest(self, pick: int, op: str, exercise: str | None, duration: float, delta: int) -> None:
        w = self.live_one(pick)
        ph = self.phone(w.user, pick)
        status = w.rest and w.rest["status"]
        if op in ("start", "short"):  # long timers never finish during the test; short ones at once
            duration = 0.1 if op == "short" else duration
            payload = {"workout_id": w.wid, "duration_s": duration, **({"exercise_id": exercise} if exercise else {})}
            data = self.call(ph, "rest:start", payload)
            assert (data["status"], data["duration_s"], data["exercise_id"]) == ("running", duration, exercise)
            assert data["ends_at"] - data["started_at"] == round(duration * 1000), data
        elif op == "adjust":
            if status == "running" and w.rest["ends_at"] + delta * 1000 < now_ms() + 20_000:
                delta = -3600  # never near now: the end is clearly past (finished at once) or clearly ahead
            data = self.call(ph, "rest:adjust", {"workout_id": w.wid, "delta_s": delta},
                             None if status == "running" else "conflict")
            if status != "running":
                return
            if delta == -3600:
                assert data["status"] == "finished" and data["ends_at"] <= data["server_time"], data
            else:
                assert data["status"] == "running" and data["ends_at"] == w.rest["ends_at"] + delta * 1000, data
                assert data["duration_s"] == float(text((data["ends_at"] - data["started_at"]) / 1000)), data
            assert (data["started_at"], data["exercise_id"]) == (w.rest["started_at"], w.rest["exercise_id"])
        else:
            data = self.call(ph, "rest:skip", {"workout_id": w.wid},
                             None if status in ("running", "skipped") else "conflict")
            if status == "skipped":
                assert data == w.skip_ack  # skipping the same timer again repeats the ack
            if status != "running":
                return
            assert data["status"] == "skipped" and data["ends_at"] == w.rest["ends_at"], data
            w.skip_ack = data
        w.rest = {k: data[k] for k in REST_KEYS}
        w.ack("rest:start", data)
        self.settle(w)
        if op == "short":  # rest:timer finished reaches every online device, once, from either process
            for ph in (ph for ph in self.phones[w.user] if ph.dev):
                fired = self.run(ph.fired(w.wid, data["seq"]))
                assert fired["seq"] == data["seq"] + 1 and fired["server_time"] >= fired["ends_at"], fired
                assert {k: fired[k] for k in REST_KEYS} == {**w.rest, "status": "finished"}, (fired, w.rest)
            w.fired += 1
            w.rest["status"] = "finished"

    @precondition(has_live)
    @rule(pick=PICK)
    def pause_or_resume(self, pick: int) -> None:
        w = self.live_one(pick)
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

    # ---- the end of a workout -------------------------------------------------------------------

    @precondition(has_live)
    @rule(pick=PICK, notes=NOTES, how=st.sampled_from(["complete", "complete", "both devices", "raced", "discard"]))
    def finish(self, pick: int, notes: str | None, how: str) -> None:
        """workout:complete, then a retry from another device: the same ack; or from both devices at once
        (the one told to retry, `unavailable`, then gets the same ack); or raced by a workout:discard from
        the other device (one wins, the other is a conflict naming the status); or workout:discard."""
        w = self.live_one(pick)
        a, b = self.phone(w.user, pick), self.phone(w.user, pick + 1)
        event = "workout:discard" if how == "discard" else "workout:complete"
        payload = {"workout_id": w.wid, **({"notes": notes} if notes is not None and how != "discard" else {})}
        if has_nul(payload):
            self.call(a, event, payload, "invalid_payload")
            return  # nothing changed: the workout is live as it was (later steps see it so)
        if how in ("complete", "discard"):
            data = self.call(a, event, payload)
            assert self.call(b, event, payload) == data  # a retry
        elif how == "both devices":
            acks = self.run(a.dev.emit(event, payload), b.dev.emit(event, payload))
            acks = [ack if ack["ok"] or ack["error"]["code"] != "unavailable"
                    else self.run(ph.dev.emit(event, payload)) for ack, ph in zip(acks, (a, b), strict=True)]
            data = self.judge(event, payload, acks[0], None)
            assert self.judge(event, payload, acks[1], None) == data
        else:
            discard = {"workout_id": w.wid}
            acks = self.run(a.dev.emit(event, payload), b.dev.emit("workout:discard", discard))
            if acks[1]["ok"]:
                event, data = "workout:discard", self.judge("workout:discard", discard, acks[1], None)
                error = self.judge("workout:complete", payload, acks[0], "conflict")
                assert error["details"] == {"status": "discarded"}, error
            else:
                data = self.judge(event, payload, acks[0], None)
                error = self.judge("workout:discard", discard, acks[1], "conflict")
                assert error["details"]["status"] in ("completing", "completed"), error
        self.ended(w, event, data, payload.get("notes") if event == "workout:complete" else None)

    @rule(pick=PICK, which=PICK, whose=st.sampled_from(["ended", "another user's", "unknown"]), op=st.sampled_from(
        ["set:complete", "set:update", "workout:pause", "rest:start", "workout:complete", "workout:discard",
         "workout:sync"]))
    def misdirected(self, pick: int, which: int, whose: str, op: str) -> None:
        """An event for an ended workout is a conflict naming its status (repeating its end repeats the ack);
        another user's workout, live or ended, and an id never used are not_found for every event."""
        user = self.user(pick)
        if whose == "ended":
            found = [w for w in self.workouts[user] if w.end_ack]
        else:
            found = [w for u in self.users if u != user for w in self.workouts[u]]
        w = found[which % len(found)] if found and whose != "unknown" else None
        payload: dict[str, Any] = {"workout_id": w.wid if w else new_id()}
        if op == "set:complete":
            payload.update(set_id=new_id(), exercise_id="bench", reps=5)
        elif op == "set:update":
            payload.update(set_id=next(iter(w.sets), new_id()) if w else new_id(), notes=f"late {new_id()}")
        elif op == "rest:start":
            payload["duration_s"] = 60
        elif op == "workout:sync":
            payload["since_seq"] = 0
        elif op == "workout:complete" and w and w.notes is not None:
            payload["notes"] = w.notes
        ph = self.phone(user, pick)
        if w is None or w.user != user:
            self.call(ph, op, payload, "not_found")
            if w:
                assert self.rest_get(user, f"/api/v1/workouts/{w.wid}").status_code == 404
        elif op == "workout:sync":
            assert self.sync(ph, w, 0, learn=False)[-1][1] == w.end_ack  # an ended workout syncs for a day
        elif (op, w.status) in (("workout:complete", "completed"), ("workout:discard", "discarded")):
            assert self.call(ph, op, payload) == w.end_ack
        elif op == "set:update" and not w.sets:
            self.call(ph, op, payload, "not_found")
        else:
            assert self.call(ph, op, payload, "conflict")["details"] == {"status": w.status}

    # ---- devices come and go ---------------------------------------------------------------------

    @rule(pick=PICK, which=PICK, server=st.integers(0, 1))
    def drop_or_return(self, pick: int, which: int, server: int) -> None:
        """A device disconnects (one stays online to act), or comes back on either process: session:ready
        has the live workout as the model has it, and workout:sync from the last seq the device applied
        fills in everything it missed."""
        user = self.user(pick)
        ph = self.phones[user][which % 2]
        if ph.dev and all(other.dev for other in self.phones[user]):
            ph.absorb()
            self.run(ph.dev.close())
            ph.dev = None
            for room in self.rooms:
                room.present.discard((user, ph.name))
        elif not ph.dev:
            ready = self.run(ph.connect(self.env.urls[server]))
            check("session:ready", ready)
            live = self.live[user]
            if live is None:
                assert ready["active_workout"] is None, ready
            else:
                live.check_snapshot(ready["active_workout"], self.bases(user))
            self.catch_up(ph)

    @rule(pick=PICK, which=PICK, back=st.integers(0, 4))
    def look(self, pick: int, which: int, back: int) -> None:
        """GET /workouts/active is the live workout as the model has it, and workout:sync from a seq the
        device has replays the events after it, each as the device got it."""
        user = self.user(pick)
        response = self.rest_get(user, "/api/v1/workouts/active")
        if self.live[user] is None:
            assert response.status_code == 404 and response.json()["code"] == "not_found", response.text
        else:
            assert response.status_code == 200, response.text
            self.live[user].check_snapshot(response.json(), self.bases(user))
        if self.workouts[user]:
            w = self.workouts[user][which % len(self.workouts[user])]
            ph = self.phone(user, pick)
            ph.absorb()
            have = ph.applied(w.wid)
            assert have == len(ph.known.get(w.wid, {})) >= w.top, (ph.name, sorted(ph.known.get(w.wid, {})), w.top)
            assert len(self.sync(ph, w, max(0, have - back))) >= min(back, have)

    # ---- group rooms ------------------------------------------------------------------------------

    @rule(pick=PICK, which=PICK, op=st.sampled_from(
        ["create", "join by code", "join by id", "wrong code", "leave", "rotate invite"]),
          name=st.sampled_from(["Tuesday crew", "Tuesday crew", "nul\x00room"]))
    def in_rooms(self, pick: int, which: int, op: str, name: str) -> None:
        """room:create / room:join (by code, or by id for members) / room:leave / room:rotate_invite (owner
        only); the user's own presence entry names their live workout started in the room; a wrong invite
        code is not_found, and after 10 of them rate_limited."""
        user = self.user(pick)
        ph = self.phone(user, pick)
        room = self.rooms[which % len(self.rooms)] if self.rooms else None
        if op == "create" or room is None:
            data = self.call(ph, "room:create", {"name": name}, "invalid_payload" if has_nul(name) else None)
            if has_nul(name):
                return
            assert data["room"]["name"] == name and data["room"]["owner_id"] == user, data
            room = Room(data["room"]["room_id"], data["room"]["invite_code"], user)
            self.rooms.append(room)
        elif op == "leave":
            data = self.call(ph, "room:leave", {"room_id": room.room_id}, None if user in room.members else "not_found")
            if user in room.members:
                assert data == {"room_id": room.room_id}
                room.members.discard(user)
                room.present = {(u, n) for u, n in room.present if u != user}
            return
        elif op == "rotate invite":  # a new code, and the old one stops working
            want = "not_found" if user not in room.members else None if user == room.owner else "forbidden"
            data = self.call(ph, "room:rotate_invite", {"room_id": room.room_id}, want)
            if want is None:
                assert data["room"]["invite_code"] != room.code and data["room"]["room_id"] == room.room_id, data
                self.wrong_codes[user] += 1
                self.call(ph, "room:join", {"invite_code": room.code},
                          "rate_limited" if self.wrong_codes[user] > 10 else "not_found")
                room.code = data["room"]["invite_code"]
            return
        elif op == "wrong code":
            self.wrong_codes[user] += 1
            self.call(ph, "room:join", {"invite_code": f"wrong-{uuid.uuid4().hex}"},
                      "rate_limited" if self.wrong_codes[user] > 10 else "not_found")
            return
        else:
            payload = {"invite_code": room.code} if op == "join by code" else {"room_id": room.room_id}
            want = None if op == "join by code" or user in room.members else "not_found"
            ack = self.run(ph.dev.emit("room:join", payload))
            if op == "join by code" and self.wrong_codes[user] >= 10 and not ack["ok"]:
                want = "rate_limited"  # after 10 wrong codes (docs do not say whether a right one is let in)
            data = self.judge("room:join", payload, ack, want)
            if want:
                return
        room.members.add(user)
        room.present.add((user, ph.name))
        assert data["room"] == {"room_id": room.room_id, "name": data["room"]["name"], "invite_code": room.code,
                                "owner_id": room.owner}, data
        presence = {e["user_id"]: e for e in data["presence"]}
        assert set(presence) <= room.members and presence[user]["device_count"] >= 1, (presence, room.members)
        live = self.live[user]
        assert presence[user]["workout_id"] == (live.wid if live and live.room_id == room.room_id else None), data

    @invariant()
    def room_activity_reaches_exactly_the_present_devices(self) -> None:
        def got(ph: Phone) -> Counter:
            if ph.dev:
                ph.absorb()
            return Counter((a["room_id"], a["user_id"], a["type"], a["data"]["workout_id"],
                            a["data"]["set"]["set_id"] if a["type"] == "set_completed" else a["data"].get("set_id"))
                           for a in ph.activity)

        for ph in (ph for phones in self.phones.values() for ph in phones):
            if ph.dev and ph.expected - got(ph):
                self.run(ph.until(lambda ph=ph: not ph.expected - got(ph) or None, f"{ph.expected - got(ph)} missing"))
            assert got(ph) == ph.expected, (ph.user, ph.name, got(ph), ph.expected)

    # ---- REST: history and records ------------------------------------------------------------------

    def check_history(self, user: str, just: Workout | None = None) -> None:
        """GET /workouts: every completed workout, newest first; GET /workouts/{id}: the one just completed;
        each exercise's records (the best of the stored sets) and history (its sets, newest first); the
        volume per month."""
        def get(path: str, struct: Any = None) -> Any:
            response = self.rest_get(user, path)
            assert response.status_code == 200, response.text
            if struct:
                msgspec.convert(response.json(), struct, strict=True)
            return response.json()

        page = get("/api/v1/workouts?limit=100", schemas.WorkoutPage)
        assert {i["workout_id"] for i in page["data"]} == set(self.history[user]), page
        order = [(i["completed_at"], i["workout_id"]) for i in page["data"]]
        assert order == sorted(order, reverse=True) and page["next_cursor"] is None, order
        for item in page["data"]:
            self.history[user][item["workout_id"]].check_stored(item)
        if just:
            detail = get(f"/api/v1/workouts/{just.wid}")
            just.check_stored(detail)
            msgspec.convert(detail, schemas.WorkoutDetail, strict=True)
        stored = {(w.wid, s["set_id"]): s for w in self.history[user].values() for s in w.sets.values()}
        for exercise in sorted(self.exercises[user]):
            check_standing(exercise, get(f"/api/v1/exercises/{exercise}/records", schemas.Records)["data"], stored)
            history = get(f"/api/v1/exercises/{exercise}/history?limit=100", schemas.HistoryPage)
            sets = sorted(((wid, s) for (wid, _), s in stored.items() if s["exercise_id"] == exercise),
                          key=lambda ws: (ws[1]["completed_at"], ws[0], ws[1]["set_id"]), reverse=True)
            assert history["data"] == [{**s, "workout_id": wid} for wid, s in sets], (history, sets)
        # every stored workout counts once, in the month it was completed
        buckets = get("/api/v1/analytics/volume?bucket=month", schemas.Volume)["data"]
        workouts = self.history[user].values()
        assert sum(b["workout_count"] for b in buckets) == len(workouts), buckets
        assert sum(b["set_count"] for b in buckets) == sum(len(w.sets) for w in workouts), buckets
        assert abs(sum(b["total_volume_kg"] for b in buckets) - sum(volume_of(list(w.sets.values()))
                                                                  for w in workouts)) < 0.01, buckets

    @rule(pick=PICK, which=PICK)  # no precondition: whether a raced workout:complete won is up to the server
    def delete_from_history(self, pick: int, which: int) -> None:
        """DELETE a completed workout: gone from history, records derived again from what remains, and a
        live workout's records judged again from them."""
        users = [u for u in self.users if self.history[u]]
        if not users:
            return
        user = users[pick % len(users)]
        wid = list(self.history[user])[which % len(self.history[user])]
        assert self.rest_get(user, f"/api/v1/workouts/{wid}", "DELETE").status_code == 204
        del self.history[user][wid]
        assert self.rest_get(user, f"/api/v1/workouts/{wid}").status_code == 404
        assert self.rest_get(user, f"/api/v1/workouts/{wid}", "DELETE").status_code == 404
        self.check_history(user)
        if self.live[user]:
            response = self.rest_get(user, "/api/v1/workouts/active")
            self.live[user].check_snapshot(response.json(), self.bases(user))


def test_whole_workouts_of_several_users_on_two_processes(journey_env: Env) -> None:
    Journeys.env = journey_env
    case = Journeys.TestCase
    case.settings = settings(max_examples=120, stateful_step_count=40, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    case().runTest()
