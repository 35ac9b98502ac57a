"""What one user's devices together may make Redis do: the cost budget (lua/_lib.lua, spend),
shared by the user's devices across processes, and the most sets a workout holds."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from liveset.lifespan import redis_client
from realtime.core import protocol as p
from realtime.core.errors import AppError
from realtime.core.keys import Keys
from realtime.live.live_state import MAX_SETS_PER_WORKOUT, RECORDS_FREE_BYTES, WORK_PER_UNIT, LiveState
from realtime.live.script_line import ScriptLine

from .clients import Device, ok, token
from .conftest import make_settings
from .servers import in_process

BURST = 12


@pytest.fixture
async def two_processes(redis_url: str, database_url: str) -> AsyncIterator[tuple[str, str]]:
    # A budget that refills too slowly to matter within the test (one unit per 100 s).
    settings = make_settings(redis_url, database_url, user_budget_per_s=0.01, user_budget_burst=BURST)
    async with in_process(settings) as one, in_process(settings) as two:
        yield one, two


async def device(url: str, user: str, name: str) -> Device:
    d = await Device().connect(url, {"token": token(user), "device_id": name})
    await d.wait_for("session:ready")
    return d


def a_set(wid: str, at: int | None = None, **fields: Any) -> dict[str, Any]:
    payload = {"workout_id": wid, "set_id": str(uuid.uuid4()), "exercise_id": "squat", "weight_kg": 100,
               "reps": 5, **fields}
    if at is not None:
        payload["completed_at"] = at
    return payload


async def test_a_users_devices_share_one_budget_across_processes_and_others_keep_theirs(
    two_processes: tuple[str, str],
) -> None:
    one, two = two_processes
    noisy, quiet = f"noisy-{uuid.uuid4().hex[:8]}", f"quiet-{uuid.uuid4().hex[:8]}"
    phone, watch = await device(one, noisy, "phone"), await device(two, noisy, "watch")
    other = await device(two, quiet, "phone")
    try:
        wid = str(uuid.uuid4())
        await ok(phone, "workout:start", {"workout_id": wid})
        # Each set before the one logged before it: the exercise is walked again, a unit each
        # (fewer than 16 sets); the first is the workout's only set and is free.
        sent = [a_set(wid, 1_700_000_000_000 - n) for n in range(BURST + 5)]
        acks = [await (phone, watch)[i % 2].emit("set:complete", s) for i, s in enumerate(sent)]
        # The burst, counted across both processes: BURST walks fill it, one more goes into debt
        # (a call is refused only while the user owes more than a burst), the rest are refused.
        assert [a["ok"] for a in acks] == [True] * (BURST + 2) + [False] * 3, acks
        refused = acks[-1]["error"]
        assert refused["code"] == "rate_limited" and refused["details"]["retry_after_ms"] > 0
        # Refused means nothing changed: the workout holds exactly the acked sets (seen by a
        # device that connects now: its session:ready snapshot is not charged).
        tablet = await device(one, noisy, "tablet")
        live = tablet.named("session:ready")[0]["active_workout"]
        await tablet.close()
        assert sorted(x["set_id"] for x in live["sets"]) == sorted(s["set_id"] for s in sent[:BURST + 2])
        # A retry of an acked set still gets its ack: a device that lost the ack must learn it.
        assert (await watch.emit("set:complete", sent[0]))["ok"] is True
        # Sets in order spend nothing; the other user's budget is their own.
        await ok(phone, "set:complete", a_set(wid))
        owid = str(uuid.uuid4())
        await ok(other, "workout:start", {"workout_id": owid})
        for n in range(BURST + 2):
            await ok(other, "set:complete", a_set(owid, 1_700_000_000_000 - n))
    finally:
        for d in (phone, watch, other):
            await d.close()


@pytest.fixture
async def live(redis_url: str) -> AsyncIterator[LiveState]:
    """The live state alone, with a budget of one unit per 100 s: what a step costs shows, in
    whole units, as how far it moves the user's budget key."""
    redis, line = redis_client(redis_url), ScriptLine(redis_url)

    async def no_history(user_id: str, exercise: str) -> bytes:
        return b"{}"
    try:
        yield LiveState(redis, line, Keys(f"budget{uuid.uuid4().hex[:6]}:"), no_history, log_cap=1000,
                        budget=(0.01, 1_000_000))
    finally:
        await line.aclose()
        await redis.aclose()


async def units_spent(live: LiveState, user: str, step: Any) -> int:
    key = live.keys.workout(user, str(uuid.uuid4()))[0].rsplit(":w:", 1)[0] + ":budget"
    now = time.time_ns() // 1_000_000  # an absent key owes nothing: the budget counts from now
    before = int(await live.redis.get(key) or now)
    await step
    return round((int(await live.redis.get(key) or now) - before) / 100_000)


def cost(read: list[bytes]) -> int:
    """Units for a step that read these entries: one, and one per WORK_PER_UNIT entries or KB."""
    return 1 + (len(read) + sum(map(len, read)) // 1024) // WORK_PER_UNIT


async def test_a_step_that_walks_or_reads_many_entries_costs_more(live: LiveState) -> None:
    user, wid = f"u-{uuid.uuid4().hex[:8]}", uuid.uuid4()
    keys = live.keys.workout(user, str(wid))
    await live.start(user, p.WorkoutStart(workout_id=wid))
    for n in range(40):  # in order: each weighed alone, by the server process, for nothing
        step = live.complete_set(user, p.SetComplete(**a_set(str(wid), 1_700_000_000_000 + n, notes="n" * 300)))
        assert await units_spent(live, user, step) == 0
    # Before all 40 by completed_at: the script sends the 40 sets (12 KB) to be walked.
    sets = await live.redis.hvals(keys[3])
    assert cost(sets) == 1 + (40 + 12) // WORK_PER_UNIT
    early = p.SetComplete(**a_set(str(wid), 1_600_000_000_000))
    assert await units_spent(live, user, live.complete_set(user, early)) == cost(sets)
    # A replay of the whole log (the start and 41 sets, each with its PR events or not) costs
    # by its length and its size.
    log = await live.redis.lrange(keys[1], 0, -1)
    assert await units_spent(live, user, live.sync(user, str(wid), 0)) == cost(log)
    assert await units_spent(live, user, live.sync(user, str(wid), len(log))) == 1  # nothing new: one unit
    # An edit and a delete have the exercise walked again.
    sets = await live.redis.hvals(keys[3])
    edit = p.SetUpdate(workout_id=wid, set_id=early.set_id, reps=3)
    assert await units_spent(live, user, live.update_set(user, edit)) == cost(sets)
    gone = p.SetDelete(workout_id=wid, set_id=early.set_id)
    sets = await live.redis.hvals(keys[3])
    assert await units_spent(live, user, live.delete_set(user, gone)) == cost(sets)


async def test_sets_whose_event_carries_a_long_list_of_records_spend_by_its_size(live: LiveState) -> None:
    """Each set at a new weight takes a record of its own (max reps at that weight), and every
    set event carries all of them: past RECORDS_FREE_BYTES, even a set logged in order spends."""
    user, wid = f"u-{uuid.uuid4().hex[:8]}", uuid.uuid4()
    await live.start(user, p.WorkoutStart(workout_id=wid))
    spent, sizes = [], []
    for n in range(60):
        step = live.complete_set(user, p.SetComplete(**a_set(str(wid), 1_700_000_000_000 + n, weight_kg=20 + n)))
        spent.append(await units_spent(live, user, step))
        sizes.append(len(await live.redis.hget(live.keys.workout(user, str(wid))[7], "squat")))
    assert sizes[-1] > RECORDS_FREE_BYTES > sizes[0]
    assert spent == [0 if size <= RECORDS_FREE_BYTES else 1 + size // 1024 // WORK_PER_UNIT for size in sizes]


async def test_a_workout_holds_at_most_max_sets(live: LiveState) -> None:
    user, wid = f"u-{uuid.uuid4().hex[:8]}", uuid.uuid4()
    await live.start(user, p.WorkoutStart(workout_id=wid))
    sets = [p.SetComplete(**a_set(str(wid), 1_700_000_000_000 + n)) for n in range(MAX_SETS_PER_WORKOUT + 1)]
    for s in sets[:-1]:
        await live.complete_set(user, s)
    with pytest.raises(AppError) as refused:
        await live.complete_set(user, sets[-1])
    assert refused.value.code == "conflict" and f"at most {MAX_SETS_PER_WORKOUT} sets" in refused.value.message
    # Deleting one makes room again.
    await live.delete_set(user, p.SetDelete(workout_id=wid, set_id=sets[0].set_id))
    await live.complete_set(user, sets[-1])
