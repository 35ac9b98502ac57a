"""A set logged last is weighed alone against the stored records (lua/_lib.lua: walk's `latest`);
that must find exactly what a walk over every set finds."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime import protocol as p
from realtime.keys import Keys
from realtime.lifespan import redis_client
from realtime.live_state import LiveState
from realtime.script_line import ScriptLine

SETS = st.lists(
    st.tuples(
        st.sampled_from(["bench", "squat"]),
        st.sampled_from([None, 0, 20, 52.5, 52.5004, 60.25, 100]),
        st.sampled_from([None, 0, 1, 5, 8, 12]),
        st.sampled_from(["normal", "warmup", "failure"]),
    ),
    min_size=1, max_size=10,
)
BASELINES = {"bench": b'{"max_weight":55,"est_1rm":60.5,"reps":{"52.5":6}}', "squat": b"{}"}


async def _records_after(live: LiveState, user: str, sets: list[tuple], arrival: list[int]) -> list[tuple]:
    wid = str(uuid.uuid4())
    await live.start(user, msgspec.convert({"workout_id": wid}, p.WorkoutStart))
    ids = [str(uuid.uuid4()) for _ in sets]
    for i in arrival:
        exercise, weight, reps, kind = sets[i]
        payload = {"workout_id": wid, "set_id": ids[i], "exercise_id": exercise, "set_type": kind,
                   "completed_at": 1_700_000_000_000 + i, "weight_kg": weight, "reps": reps}
        await live.complete_set(user, msgspec.convert({k: v for k, v in payload.items() if v is not None},
                                                      p.SetComplete))
    snapshot = msgspec.json.decode(bytes(await live.snapshot(user, wid)))
    await live.discard(user, wid)
    by_index = {set_id: i for i, set_id in enumerate(ids)}
    return sorted(((r["type"], r.get("weight_kg"), r["value"], r["previous"], by_index[r["set_id"]])
                   for r in snapshot["records"]), key=repr)


@pytest.fixture(scope="module")
def url(redis_url: str) -> str:
    return redis_url


@settings(max_examples=40, deadline=None)
@given(sets=SETS)
def test_weighing_each_new_set_alone_finds_what_a_full_walk_finds(url: str, sets: list[tuple]) -> None:
    async def both() -> tuple[list[tuple], list[tuple]]:
        redis, line = redis_client(url), ScriptLine(url)

        async def baseline(user_id: str, exercise: str) -> bytes:
            return BASELINES[exercise]
        live = LiveState(redis, line, Keys(f"walk{uuid.uuid4().hex[:6]}:"), baseline, log_cap=1000)
        try:
            in_order = await _records_after(live, "walker", sets, list(range(len(sets))))  # each set the last
            backwards = await _records_after(live, "walker", sets, list(reversed(range(len(sets)))))  # full walks
            return in_order, backwards
        finally:
            await line.aclose()
            await redis.aclose()

    in_order, backwards = asyncio.run(both())
    assert in_order == backwards
