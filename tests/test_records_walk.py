"""A set logged last is weighed alone, by the server process, against the records it last
saw (records.py: weigh_last_set; set_complete.lua checks them); that must find exactly what
a walk over every set (lua/_lib.lua: walk) finds, whichever process logs each set."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveset.lifespan import redis_client
from realtime.core import protocol as p
from realtime.core.keys import Keys
from realtime.live.live_state import LiveState
from realtime.live.script_line import ScriptLine

pytestmark = pytest.mark.every_redis

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


async def _records_after(lives: list[LiveState], user: str, sets: list[tuple], arrival: list[int]) -> list[tuple]:
    """The workout's records once `sets` arrive in `arrival` order, each through the next of `lives`."""
    live = lives[0]
    wid = str(uuid.uuid4())
    await live.start(user, msgspec.convert({"workout_id": wid}, p.WorkoutStart))
    ids = [str(uuid.uuid4()) for _ in sets]
    for n, i in enumerate(arrival):
        live = lives[n % len(lives)]
        exercise, weight, reps, kind = sets[i]
        payload = {"workout_id": wid, "set_id": ids[i], "exercise_id": exercise, "set_type": kind,
                   "completed_at": 1_700_000_000_000 + i, "weight_kg": weight, "reps": reps}
        await live.complete_set(user, msgspec.convert({k: v for k, v in payload.items() if v is not None},
                                                      p.SetComplete))
    snapshot = msgspec.json.decode(bytes(await live.active_snapshot(user)))
    # The same baselines again: the script walks every set itself (lua/_lib.lua: rewalk) and
    # must find what the weighing and walks done here (records.py) found.
    await live.rebase(user, {s[0]: BASELINES[s[0]] for s in sets})
    rewalked = msgspec.json.decode(bytes(await live.active_snapshot(user)))
    await live.discard(user, wid)
    by_index = {set_id: i for i, set_id in enumerate(ids)}

    def records(of: dict) -> list[tuple]:
        return sorted(((r["type"], r.get("weight_kg"), r["value"], r["previous"], by_index[r["set_id"]])
                       for r in of["records"]), key=repr)
    assert records(rewalked) == records(snapshot)
    return records(snapshot)


@pytest.fixture(scope="module")
def url(redis_url: str) -> str:
    return redis_url


def _live(url: str, prefix: str) -> tuple[LiveState, Callable[[], Awaitable[None]]]:
    redis, line = redis_client(url), ScriptLine(url)

    async def baseline(user_id: str, exercise: str) -> bytes:
        return BASELINES[exercise]

    async def close() -> None:
        await line.aclose()
        await redis.aclose()
    return LiveState(redis, line, Keys(prefix), baseline, log_cap=1000, budget=(100_000.0, 100_000)), close


@settings(max_examples=40, deadline=None)
@given(sets=SETS)
def test_weighing_each_new_set_alone_finds_what_a_full_walk_finds(url: str, sets: list[tuple]) -> None:
    async def both() -> tuple[list[tuple], list[tuple], list[tuple]]:
        prefix = f"walk{uuid.uuid4().hex[:6]}:"
        (one, close_one), (other, close_other) = _live(url, prefix), _live(url, prefix)
        try:
            in_order = await _records_after([one], "walker", sets, list(range(len(sets))))  # each set the last
            # Two processes taking turns: each finds the records changed since it last saw them.
            taking_turns = await _records_after([one, other], "walker", sets, list(range(len(sets))))
            backwards = await _records_after([one], "walker", sets, list(reversed(range(len(sets)))))  # full walks
            return in_order, taking_turns, backwards
        finally:
            await close_one()
            await close_other()

    in_order, taking_turns, backwards = asyncio.run(both())
    assert in_order == taking_turns == backwards


def _replies_of(live: LiveState) -> list[bytes]:
    """The status of every script reply `live` gets from now on."""
    replies: list[bytes] = []
    call = live._call

    async def counted(name: str, *args: object) -> list:
        reply = await call(name, *args)
        replies.append(reply[0])
        return reply
    live._call = counted  # type: ignore[method-assign]
    return replies


async def test_a_set_logged_last_is_one_script_call_once_its_records_are_known(url: str) -> None:
    live, close = _live(url, f"calls{uuid.uuid4().hex[:6]}:")
    replies = _replies_of(live)
    try:
        wid = uuid.uuid4()
        await live.start("counter", p.WorkoutStart(workout_id=wid))
        for n, weight in enumerate((50, 60, 60, 40)):  # a millisecond apart: two in one would tie (see below)
            await live.complete_set("counter", p.SetComplete(
                workout_id=wid, set_id=uuid.uuid4(), exercise_id="bench", weight_kg=weight, reps=5,
                completed_at=1_700_000_000_000 + n))
    finally:
        await close()
    # The first set finds the standing records missing (stale), loads them, and is logged;
    # every later one is weighed here and logged in one call.
    assert replies == [b"ok", b"stale", b"ok", b"ok", b"ok", b"ok"]


async def test_a_set_is_logged_once_while_its_exercise_keeps_changing_under_it(url: str) -> None:
    prefix = f"storm{uuid.uuid4().hex[:6]}:"
    (phone, close_phone), (watch, close_watch) = _live(url, prefix), _live(url, prefix)
    wid = uuid.uuid4()

    def a_set(weight: float, at: int) -> p.SetComplete:
        return p.SetComplete(workout_id=wid, set_id=uuid.uuid4(), exercise_id="bench", weight_kg=weight, reps=5,
                             completed_at=at)
    watched = a_set(70, 1_700_000_000_001)

    async def meanwhile(user_id: str, exercise: str) -> bytes:
        await watch.complete_set(user_id, watched)  # while the phone loads the standing records
        return BASELINES[exercise]
    phone.load_baseline = meanwhile
    replies = _replies_of(phone)
    try:
        await phone.start("stormy", p.WorkoutStart(workout_id=wid))
        heavy = a_set(80, 1_700_000_000_000)
        ack = msgspec.json.decode(bytes(await phone.complete_set("stormy", heavy)))
        snapshot = msgspec.json.decode(bytes(await phone.active_snapshot("stormy")))
    finally:
        await close_phone()
        await close_watch()
    # Records missing, then changed by the watch, whose set is now after this one: the set
    # is not the last, the script sends every set, and the walk done here is stored.
    assert replies[1:] == [b"stale", b"stale", b"walk", b"ok"]
    assert sorted(s["set_id"] for s in snapshot["sets"]) == sorted([str(heavy.set_id), str(watched.set_id)])
    assert {(r["type"], r["set_id"]) for r in snapshot["records"]} == {
        ("max_weight", str(heavy.set_id)), ("est_1rm", str(heavy.set_id)), ("max_volume", str(heavy.set_id)),
        ("max_reps", str(heavy.set_id)), ("max_reps", str(watched.set_id))}
    assert ack["records"] == snapshot["records"]


EDITS = st.lists(
    st.tuples(
        st.sampled_from(["update", "delete"]),
        st.integers(0, 9),  # which logged set (modulo how many there are)
        st.sampled_from(["bench", "squat"]),
        st.sampled_from([None, 20, 60.25, 100]),
        st.sampled_from([None, 1, 5, 12]),
        st.integers(-3, 3),  # moves completed_at by so many ms
    ),
    max_size=4,
)


async def _record_events(live: LiveState, prefix_user: str, sets: list[tuple], arrival: list[int],
                         edits: list[tuple]) -> list[tuple]:
    """Every event of a workout (sets arriving in `arrival` order, then `edits`) with what it says
    of records, as a device replaying the workout from seq 0 sees them."""
    wid, ids = uuid.UUID(int=1), [str(uuid.UUID(int=100 + i)) for i in range(len(sets))]
    await live.start(prefix_user, p.WorkoutStart(workout_id=wid))
    await live.preload(prefix_user, str(wid), BASELINES)
    for i in arrival:
        exercise, weight, reps, kind = sets[i]
        payload = {"workout_id": wid, "set_id": ids[i], "exercise_id": exercise, "set_type": kind,
                   "completed_at": 1_700_000_000_000 + 10 * i, "weight_kg": weight, "reps": reps}
        await live.complete_set(prefix_user, msgspec.convert({k: v for k, v in payload.items() if v is not None},
                                                             p.SetComplete))
    alive = list(ids)
    for action, which, exercise, weight, reps, shift in edits:
        if not alive:
            break
        set_id = alive[which % len(alive)]
        if action == "delete":
            alive.remove(set_id)
            await live.delete_set(prefix_user, p.SetDelete(workout_id=wid, set_id=uuid.UUID(set_id)))
        else:
            at = 1_700_000_000_000 + 10 * ids.index(set_id) + shift
            await live.update_set(prefix_user, p.SetUpdate(workout_id=wid, set_id=uuid.UUID(set_id),
                                                           exercise_id=exercise, weight_kg=weight, reps=reps,
                                                           completed_at=at))
    replay = msgspec.json.decode(bytes(await live.sync(prefix_user, str(wid), 0)))
    await live.discard(prefix_user, str(wid))
    # The order of the items in a list of records says nothing (the weighing here lists them
    # as the set took them, a walk as their slots were first taken).
    return [(e["event"], sorted(map(repr, e["data"].get("records") or []))) for e in replay["events"]]


@settings(max_examples=150, deadline=None)
@given(sets=SETS, edits=EDITS, shuffle=st.randoms(use_true_random=False))
def test_walks_done_here_find_what_the_scripts_find_walking_themselves(url: str, sets: list[tuple],
                                                                       edits: list[tuple], shuffle) -> None:
    """Sets logged out of order, edits and deletes are walked by the server process
    (records.py: walk) against the workout's seq; the scripts' own walk (lua/_lib.lua: rewalk,
    what they do when the workout keeps changing under the caller) must say the same, event
    for event: the same records on every set event, the same PRs."""
    arrival = list(range(len(sets)))
    shuffle.shuffle(arrival)

    async def both() -> tuple[list[tuple], list[tuple]]:
        (here, close_here), (there, close_there) = (_live(url, f"here{uuid.uuid4().hex[:6]}:"),
                                                    _live(url, f"lua{uuid.uuid4().hex[:6]}:"))
        there.weigh_tries = 1
        try:
            return (await _record_events(here, "walker", sets, arrival, edits),
                    await _record_events(there, "walker", sets, arrival, edits))
        finally:
            await close_here()
            await close_there()

    walked_here, walked_by_scripts = asyncio.run(both())
    assert walked_here == walked_by_scripts
