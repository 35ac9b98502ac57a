"""A stateful test of the live state in Redis: duplicate, concurrent and out-of-order
operations keep `seq` gapless and apply every write exactly once.

It drives realtime.live.live_state directly (no sockets) against the real Redis, with
its own event loop, and checks Redis against a model after every step.
"""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from liveset.lifespan import redis_client
from realtime.core import protocol as p
from realtime.core.errors import AppError
from realtime.core.keys import Keys
from realtime.core.records import number_text
from realtime.live.live_state import LiveState
from realtime.live.script_line import ScriptLine

pytestmark = pytest.mark.every_redis

EXERCISES = ["bench", "squat", "row"]


async def _no_history(user_id: str, exercise_id: str) -> bytes:
    return b"{}"


class LiveStateMachine(RuleBasedStateMachine):
    redis_url = ""
    sets = Bundle("sets")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.redis = redis_client(self.redis_url)
        self.line = ScriptLine(self.redis_url)
        self.live = LiveState(self.redis, self.line, Keys(f"sm{uuid.uuid4().hex[:6]}:"), _no_history, log_cap=10_000,
                              budget=(100_000.0, 100_000))
        self.user = "stateful-user"
        self.wid = str(uuid.uuid4())
        self.model: dict[str, dict] = {}  # set_id -> fields now
        self.deleted: set[str] = set()
        self.payloads: dict[str, p.SetComplete] = {}

    def run(self, *coros):
        async def together():
            return await asyncio.gather(*coros, return_exceptions=True)

        return self.loop.run_until_complete(together())

    def teardown(self) -> None:
        self.loop.run_until_complete(self.line.aclose())
        self.loop.run_until_complete(self.redis.aclose())
        self.loop.close()

    @initialize()
    def start(self) -> None:
        (ack,) = self.run(self.live.start(self.user, p.WorkoutStart(workout_id=uuid.UUID(self.wid))))
        assert not isinstance(ack, Exception), ack

    def _payload(self, set_id: str, exercise: str, weight: float, reps: int, at: int,
                 kind: str = "normal", rpe: float | None = None) -> p.SetComplete:
        return p.SetComplete(workout_id=uuid.UUID(self.wid), set_id=uuid.UUID(set_id), exercise_id=exercise,
                             weight_kg=weight, reps=reps, completed_at=1_700_000_000_000 + at, set_type=kind, rpe=rpe)

    @rule(target=sets, exercise=st.sampled_from(EXERCISES), weight=st.sampled_from([20, 40.5, 60, 80, 33.3]),
          reps=st.integers(1, 12), at=st.integers(0, 10_000), copies=st.integers(1, 3),
          kind=st.sampled_from(["normal", "warmup"]), rpe=st.sampled_from([None, 6, 7.5, 9.5]))
    def complete(self, exercise, weight, reps, at, copies, kind, rpe):
        set_id = str(uuid.uuid4())
        payload = self._payload(set_id, exercise, weight, reps, at, kind, rpe)
        acks = self.run(*(self.live.complete_set(self.user, payload) for _ in range(copies)))
        assert all(not isinstance(a, Exception) for a in acks), acks
        assert len({bytes(a) for a in acks}) == 1  # the same ack for every copy
        self.model[set_id] = {"exercise_id": exercise, "weight_kg": weight, "reps": reps, "set_type": kind, "rpe": rpe}
        self.payloads[set_id] = payload
        return set_id

    @rule(set_id=sets, reps=st.integers(1, 12))
    def complete_again_differently(self, set_id, reps):
        payload = msgspec.structs.replace(self.payloads[set_id], reps=reps)
        (result,) = self.run(self.live.complete_set(self.user, payload))
        if reps == self.payloads[set_id].reps:
            assert not isinstance(result, Exception)
        else:
            assert isinstance(result, AppError) and result.code == "conflict"

    @rule(set_id=sets, reps=st.integers(1, 12), rpe=st.sampled_from([None, 8]), copies=st.integers(1, 2))
    def update(self, set_id, reps, rpe, copies):
        change = p.SetUpdate(workout_id=uuid.UUID(self.wid), set_id=uuid.UUID(set_id), reps=reps, rpe=rpe)
        results = self.run(*(self.live.update_set(self.user, change) for _ in range(copies)))
        if set_id in self.deleted:
            assert all(isinstance(r, AppError) and r.code == "not_found" for r in results)
            return
        assert all(not isinstance(r, Exception) for r in results), results
        self.model[set_id].update(reps=reps, rpe=rpe)

    @rule(set_id=sets, copies=st.integers(1, 2))
    def delete(self, set_id, copies):
        change = p.SetDelete(workout_id=uuid.UUID(self.wid), set_id=uuid.UUID(set_id))
        results = self.run(*(self.live.delete_set(self.user, change) for _ in range(copies)))
        assert all(not isinstance(r, Exception) for r in results), results
        self.model.pop(set_id, None)
        self.deleted.add(set_id)

    @rule(batch=st.lists(st.tuples(st.sampled_from(EXERCISES), st.integers(1, 9)), min_size=2, max_size=6))
    def concurrent_new_sets(self, batch):
        payloads = [self._payload(str(uuid.uuid4()), ex, 50, reps, 500) for ex, reps in batch]
        results = self.run(*(self.live.complete_set(self.user, pl) for pl in payloads))
        assert all(not isinstance(r, Exception) for r in results), results
        for pl in payloads:
            self.model[str(pl.set_id)] = {"exercise_id": pl.exercise_id, "weight_kg": 50, "reps": pl.reps,
                                          "set_type": "normal", "rpe": None}
            self.payloads[str(pl.set_id)] = pl

    @invariant()
    def redis_matches_the_model(self) -> None:
        (reply,) = self.run(self.live.sync(self.user, self.wid, 0))
        events = msgspec.json.decode(reply)["events"]
        assert [e["data"]["seq"] for e in events] == list(range(1, len(events) + 1))  # gapless, once each
        (snap,) = self.run(self.live.active_snapshot(self.user))
        snapshot = msgspec.json.decode(snap, type=p.WorkoutSnapshot)
        assert snapshot.seq == len(events)
        got = {s.set_id: {"exercise_id": s.exercise_id, "weight_kg": s.weight_kg, "reps": s.reps,
                          "set_type": s.set_type, "rpe": s.rpe} for s in snapshot.sets}
        assert got == self.model
        times = [s.completed_at for s in snapshot.sets]
        assert times == sorted(times)
        assert snapshot.stats.set_count == len(self.model)
        # the totals as the sets were logged (live_state.totals_share), changed and deleted (lua tally)
        volume = sum(s["weight_kg"] * s["reps"] for s in self.model.values() if s["set_type"] != "warmup")
        assert abs(snapshot.stats.total_volume_kg - volume) < 0.001
        rpes = [s["rpe"] for s in self.model.values() if s["rpe"] is not None]
        assert snapshot.stats.avg_rpe == (float(number_text(sum(rpes) / len(rpes), 2)) if rpes else None)
        completed = [e for e in events if e["event"] == "set:completed"]
        assert len(completed) == len(self.payloads)  # one event per set, however often it was sent


def test_live_state_machine(redis_url: str) -> None:
    LiveStateMachine.redis_url = redis_url
    machine = LiveStateMachine.TestCase
    machine.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
    machine().runTest()
