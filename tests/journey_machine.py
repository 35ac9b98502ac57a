"""The journeys' state machine (tests/test_journeys.py) without its rules: what it tracks, how it calls the
servers and judges an ack, and the REST history it checks after each completion."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import msgspec
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine

from realtime.core import protocol as p
from rest import schemas

from .clients import check, token
from .journey_model import (
    Bases,
    Room,
    Workout,
    check_standing,
    records_of,
    volume_of,
)
from .journey_phone import Env, Phone

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


def has_live(self: JourneyMachine) -> bool:
    return any(self.live.values())


class JourneyMachine(RuleBasedStateMachine):
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
