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
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from .clients import check
from .journey_detours import Detours
from .journey_machine import EXERCISES, KINDS, NOTES, PICK, PLANS, REPS, REST_KEYS, SET, WEIGHTS, has_live, patches
from .journey_model import (
    FUTURE_TOLERANCE_MS,
    Workout,
    has_nul,
    now_ms,
    text,
)
from .journey_phone import Env, Phone, new_id
from .servers import TEST_SECRET, ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.every_redis]


@pytest.fixture(scope="module")
def journey_env(redis_url: str, database_url: str, workdir: Path):
    """Two web processes of the Procfile sharing one Redis prefix and one database, for the whole test."""
    loop = asyncio.new_event_loop()
    env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url, "JWT_SECRET": TEST_SECRET,
           "REDIS_PREFIX": f"j{uuid.uuid4().hex[:8]}:", "LOG_LEVEL": "WARNING",
           # events go back to back from a few devices; the rate limits are not under test here
           "RATE_LIMIT_PER_S": "100000", "RATE_LIMIT_BURST": "100000",
           "CONNECT_RATE_LIMIT_PER_S": "100000", "CONNECT_RATE_LIMIT_BURST": "100000",
           "REST_RATE_LIMIT_PER_S": "100000", "REST_RATE_LIMIT_BURST": "100000",
           "USER_BUDGET_PER_S": "100000", "USER_BUDGET_BURST": "100000"}
    webs = [ServerProcess(env, workdir) for _ in range(2)]
    # A pooled connection idle past uvicorn's keep-alive (5 s) may be closed as it is reused:
    # let it go sooner ("Server disconnected without sending a response" when steps ran slow).
    http = httpx.AsyncClient(timeout=10, limits=httpx.Limits(keepalive_expiry=1))

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


class Journeys(Detours):
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


def test_whole_workouts_of_several_users_on_two_processes(journey_env: Env) -> None:
    Journeys.env = journey_env
    case = Journeys.TestCase
    case.settings = settings(max_examples=120, stateful_step_count=40, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    case().runTest()
