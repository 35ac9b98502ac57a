"""Live workouts on one process: events, acks, seq, idempotency, access, pause, sync."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from realtime.core.keys import Keys

from .clients import Device, check, error, ok, token

pytestmark = pytest.mark.every_redis


def new_id() -> str:
    return str(uuid.uuid4())


async def test_start_reaches_every_device_with_seq_1(user) -> None:
    uid, phone, watch = user
    wid = new_id()
    ack = await ok(phone, "workout:start", {"workout_id": wid, "name": "Push day",
                                             "plan": [{"exercise_id": "bench", "sets": 3, "reps": 5}]})
    started = check("workout:started", ack)
    assert started.seq == 1 and started.workout.name == "Push day" and started.workout.status == "live"
    assert started.workout.plan is not None and started.workout.plan[0].exercise_id == "bench"
    for device in (phone, watch):
        (event,) = await device.wait_for("workout:started")
        assert event == ack


async def test_one_live_workout_per_user(user) -> None:
    _, phone, _ = user
    first = new_id()
    await ok(phone, "workout:start", {"workout_id": first})
    err = await error(phone, "workout:start", {"workout_id": new_id()})
    assert err["code"] == "conflict" and err["details"] == {"workout_id": first}


async def test_set_complete_is_idempotent_and_conflicts_on_other_content(user) -> None:
    _, phone, watch = user
    wid, sid = new_id(), new_id()
    await ok(phone, "workout:start", {"workout_id": wid})
    payload = {"workout_id": wid, "set_id": sid, "exercise_id": "squat", "weight_kg": 100, "reps": 5, "rpe": 8}
    first = await ok(phone, "set:complete", payload)
    again = await ok(watch, "set:complete", payload)
    assert again == first
    completed = check("set:completed", first)
    assert completed.seq == 2
    assert completed.stats.set_count == 1 and completed.stats.total_volume_kg == 500 and completed.stats.avg_rpe == 8
    err = await error(phone, "set:complete", {**payload, "reps": 6})
    assert err["code"] == "conflict"
    await watch.wait_for("set:completed")
    await asyncio.sleep(0.2)
    assert len(watch.named("set:completed")) == 1
    assert watch.seqs(wid) == [1, 2, 3]  # started, completed, pr:achieved (first ever squat)


async def test_another_users_workout_is_not_found(user, server: str) -> None:
    _, phone, _ = user
    wid, sid = new_id(), new_id()
    await ok(phone, "workout:start", {"workout_id": wid})
    await ok(phone, "set:complete", {"workout_id": wid, "set_id": sid, "exercise_id": "row", "reps": 10})
    intruder = await Device().connect(server, {"token": token("intruder"), "device_id": "laptop"})
    try:
        await intruder.wait_for("session:ready")
        for event, payload in [
            ("workout:pause", {"workout_id": wid}),
            ("workout:resume", {"workout_id": wid}),
            ("workout:sync", {"workout_id": wid, "since_seq": 0}),
            ("set:complete", {"workout_id": wid, "set_id": new_id(), "exercise_id": "row", "reps": 1}),
            ("set:update", {"workout_id": wid, "set_id": sid, "reps": 99}),
            ("set:delete", {"workout_id": wid, "set_id": sid}),
            ("rest:start", {"workout_id": wid, "duration_s": 60}),
            ("rest:adjust", {"workout_id": wid, "delta_s": 15}),
            ("rest:skip", {"workout_id": wid}),
        ]:
            err = await error(intruder, event, payload)
            assert err["code"] == "not_found", (event, err)
        # Ids are the user's own: the same id for another user is another workout, and the owner's is untouched.
        theirs = check("workout:started", await ok(intruder, "workout:start", {"workout_id": wid}))
        assert theirs.seq == 1 and theirs.workout.sets == []
        sync = await ok(phone, "workout:sync", {"workout_id": wid, "since_seq": 0})
        assert [e["event"] for e in sync["events"]] == ["workout:started", "set:completed", "pr:achieved"]
    finally:
        await intruder.close()


async def test_pause_time_does_not_count(user) -> None:
    _, phone, watch = user
    wid = new_id()
    await ok(phone, "workout:start", {"workout_id": wid})
    paused = check("workout:paused", await ok(phone, "workout:pause", {"workout_id": wid}))
    again = await ok(phone, "workout:pause", {"workout_id": wid})
    assert await ok(watch, "workout:pause", {"workout_id": wid}) == again
    await asyncio.sleep(1.2)
    resumed = check("workout:resumed", await ok(watch, "workout:resume", {"workout_id": wid}))
    assert resumed.at - paused.at >= 1200
    err = await error(phone, "workout:resume", {"workout_id": new_id()})
    assert err["code"] == "not_found"
    sync = await ok(phone, "workout:sync", {"workout_id": wid, "since_seq": 0})
    assert [e["event"] for e in sync["events"]] == ["workout:started", "workout:paused", "workout:resumed"]
    done = await ok(phone, "set:complete", {"workout_id": wid, "set_id": new_id(), "exercise_id": "plank",
                                             "duration_s": 60})
    assert check("set:completed", done).stats.duration_s < 1  # 1.2 s paused, the rest is milliseconds


async def test_update_and_delete_adjust_stats_and_repeat_their_acks(user) -> None:
    _, phone, watch = user
    wid, a, b = new_id(), new_id(), new_id()
    await ok(phone, "workout:start", {"workout_id": wid})
    await ok(phone, "set:complete", {"workout_id": wid, "set_id": a, "exercise_id": "press", "weight_kg": 40,
                                     "reps": 10, "rpe": 7})
    await ok(phone, "set:complete", {"workout_id": wid, "set_id": b, "exercise_id": "press", "weight_kg": 40,
                                     "reps": 8, "rpe": 9})
    updated = await ok(watch, "set:update", {"workout_id": wid, "set_id": b, "weight_kg": 42.5, "rpe": None})
    assert await ok(phone, "set:update", {"workout_id": wid, "set_id": b, "weight_kg": 42.5, "rpe": None}) == updated
    event = check("set:updated", updated)
    assert event.set.weight_kg == 42.5 and event.set.rpe is None and event.set.reps == 8
    assert event.stats.total_volume_kg == 740 and event.stats.avg_rpe == 7 and event.stats.set_count == 2
    deleted = await ok(phone, "set:delete", {"workout_id": wid, "set_id": a})
    assert await ok(watch, "set:delete", {"workout_id": wid, "set_id": a}) == deleted
    gone = check("set:deleted", deleted)
    assert gone.stats.set_count == 1 and gone.stats.total_volume_kg == 340 and gone.stats.avg_rpe is None
    assert (await error(phone, "set:update", {"workout_id": wid, "set_id": a, "reps": 1}))["code"] == "not_found"
    assert (await error(phone, "set:delete", {"workout_id": wid, "set_id": new_id()}))["code"] == "not_found"
    assert (await error(phone, "set:update", {"workout_id": wid, "set_id": b}))["code"] == "invalid_payload"
    seqs = phone.seqs(wid)
    await asyncio.sleep(0.1)
    assert phone.seqs(wid) == watch.seqs(wid) == list(range(1, len(seqs) + 1))


async def test_offline_sets_land_once_in_completed_at_order(user) -> None:
    _, phone, watch = user
    wid = new_id()
    await ok(phone, "workout:start", {"workout_id": wid})
    base = int(time.time() * 1000) - 60_000
    sets = [{"workout_id": wid, "set_id": new_id(), "exercise_id": "curl", "weight_kg": 15, "reps": 12,
             "completed_at": base + i * 1000} for i in range(6)]
    replay = [sets[i] for i in (3, 0, 5, 1, 4, 2)]
    await asyncio.gather(*(ok(watch, "set:complete", s) for s in replay + replay))
    snapshot = (await ok(phone, "workout:sync", {"workout_id": wid, "since_seq": 0}))
    sync_sets = [e for e in snapshot["events"] if e["event"] == "set:completed"]
    assert len(sync_sets) == 6
    ready = Device()
    # A device connecting now renders the snapshot at once, sets in completed_at order.
    await ready.connect(phone.sio.connection_url, {"token": token(user[0]), "device_id": "tablet"})
    try:
        (session,) = await ready.wait_for("session:ready")
        workout = check("session:ready", session).active_workout
        assert workout is not None and workout.workout_id == wid
        assert [s.set_id for s in workout.sets] == [s["set_id"] for s in sets]
        assert workout.stats.set_count == 6
    finally:
        await ready.close()


async def test_sync_replays_exactly_the_missing_events(user) -> None:
    _, phone, _ = user
    wid = new_id()
    await ok(phone, "workout:start", {"workout_id": wid})
    for reps in range(1, 5):
        await ok(phone, "set:complete", {"workout_id": wid, "set_id": new_id(), "exercise_id": "dip", "reps": reps})
    await phone.wait_for("pr:achieved", count=4)
    live = phone.workout_events(wid)
    for since in (0, 3, len(live) - 1, len(live)):
        reply = await ok(phone, "workout:sync", {"workout_id": wid, "since_seq": since})
        assert [(e["event"], e["data"]) for e in reply["events"]] == live[since:]


async def test_sync_beyond_the_log_gives_a_snapshot(redis_url: str, database_url: str) -> None:
    from .conftest import make_settings
    from .servers import in_process

    async with in_process(make_settings(redis_url, database_url, workout_log_cap=5)) as url:
        phone = await Device().connect(url, {"token": token("capped"), "device_id": "phone"})
        try:
            await phone.wait_for("session:ready")
            wid = new_id()
            await ok(phone, "workout:start", {"workout_id": wid})
            for _ in range(6):
                await ok(phone, "set:complete", {"workout_id": wid, "set_id": new_id(), "exercise_id": "run",
                                                 "distance_m": 400})
            reply = await ok(phone, "workout:sync", {"workout_id": wid, "since_seq": 1})
            assert set(reply) == {"snapshot", "seq"}
            assert reply["seq"] == reply["snapshot"]["seq"] >= 7
            assert len(reply["snapshot"]["sets"]) == 6
            tail = await ok(phone, "workout:sync", {"workout_id": wid, "since_seq": reply["seq"] - 4})
            assert len(tail["events"]) == 4
        finally:
            await phone.close()


@contextlib.asynccontextmanager
async def started_workout(
        redis_url: str, database_url: str, user_id: str) -> AsyncIterator[tuple[Device, Redis, list[str], str]]:
    """A server of its own and one device of `user_id` with a workout started, plus a Redis
    client to read or damage the workout's keys: (device, redis, the workout's keys, its id)."""
    from .conftest import make_settings
    from .servers import in_process

    settings = make_settings(redis_url, database_url)
    async with in_process(settings) as url:
        phone = await Device().connect(url, {"token": token(user_id), "device_id": "phone"})
        redis = Redis.from_url(redis_url)
        try:
            await phone.wait_for("session:ready")
            wid = new_id()
            await ok(phone, "workout:start", {"workout_id": wid})
            yield phone, redis, Keys(settings.redis_prefix).workout(user_id, wid), wid
        finally:
            await redis.aclose()
            await phone.close()


async def test_sync_over_a_hole_in_the_log_gives_a_snapshot(redis_url: str, database_url: str) -> None:
    """Never a partial replay: a log that skips a seq (as one written partly by another version
    during a rolling upgrade would) answers a sync across the hole with the snapshot."""
    async with started_workout(redis_url, database_url, "holed") as (phone, redis, keys, wid):
        for _ in range(3):
            await ok(phone, "set:complete", {"workout_id": wid, "set_id": new_id(), "exercise_id": "run",
                                             "distance_m": 400})
        log = keys[1]
        assert await redis.llen(log) == 4  # workout:started and three set:completed, seq 1-4
        whole = await ok(phone, "workout:sync", {"workout_id": wid, "since_seq": 1})
        assert [e["data"]["seq"] for e in whole["events"]] == [2, 3, 4]
        await redis.lrem(log, 1, await redis.lindex(log, 2))  # seq 3 goes

        reply = await ok(phone, "workout:sync", {"workout_id": wid, "since_seq": 1})
        assert set(reply) == {"snapshot", "seq"} and reply["seq"] == 4
        assert len(reply["snapshot"]["sets"]) == 3
        after = await ok(phone, "workout:sync", {"workout_id": wid, "since_seq": 3})
        assert set(after) == {"snapshot", "seq"}  # the log holds seq 4, but not where seq 4 belongs


async def test_an_ended_workout_lets_the_stream_log_of_an_earlier_version_expire(
        redis_url: str, database_url: str) -> None:
    """A workout started before the log became a list still has its stream (`<state>:log`):
    ending it gives that key the same expiry as the rest, so it does not stay for ever."""
    async with started_workout(redis_url, database_url, "upgraded") as (phone, redis, keys, wid):
        legacy = keys[0] + ":log"
        await redis.xadd(legacy, {"e": "workout:started", "d": "{}"}, id="0-1")
        assert await redis.ttl(legacy) == -1
        await ok(phone, "workout:discard", {"workout_id": wid})
        assert 0 < await redis.ttl(legacy) <= 600  # settings.ended_keep_s


async def test_time_sync(user) -> None:
    _, phone, _ = user
    before = int(time.time() * 1000)
    reply = await ok(phone, "time:sync", {})
    assert before - 5 <= reply["server_time"] <= int(time.time() * 1000) + 5
