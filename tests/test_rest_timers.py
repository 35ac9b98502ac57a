"""Rest timers: timestamps, fired by the server at ends_at exactly once; never a stale one."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from liveset.lifespan import redis_client
from realtime.core import protocol as p
from realtime.core.keys import Keys, shard_of
from realtime.live import live_state
from realtime.live.live_state import LiveState, now_ms
from realtime.live.script_line import ScriptLine

from .clients import Device, check, error, ok, token
from .test_live_workout import new_id

pytestmark = pytest.mark.every_redis


async def start_workout(device) -> str:
    wid = new_id()
    await ok(device, "workout:start", {"workout_id": wid})
    return wid


def timers(device, wid: str) -> list[dict]:
    return [data for name, data in device.workout_events(wid) if name == "rest:timer"]


async def test_finished_is_sent_at_ends_at_once(user) -> None:
    _, phone, watch = user
    wid = await start_workout(phone)
    running = check("rest:timer", await ok(phone, "rest:start", {"workout_id": wid, "duration_s": 0.5,
                                                                  "exercise_id": "bench"}))
    assert running.status == "running" and running.ends_at - running.started_at == 500
    assert running.exercise_id == "bench"
    for device in (phone, watch):
        events = await device.wait_for("rest:timer", count=2, timeout=3)
        finished = check("rest:timer", events[1])
        assert finished.status == "finished" and finished.ends_at == running.ends_at
        assert finished.seq == running.seq + 1
        assert time.time() * 1000 >= finished.ends_at
        assert finished.server_time >= finished.ends_at
    await asyncio.sleep(0.6)
    assert [t["status"] for t in timers(watch, wid)] == ["running", "finished"]


async def test_restart_and_adjust_never_let_a_stale_timer_fire(user) -> None:
    _, phone, watch = user
    wid = await start_workout(phone)
    await ok(phone, "rest:start", {"workout_id": wid, "duration_s": 0.4})
    restarted = check("rest:timer", await ok(watch, "rest:start", {"workout_id": wid, "duration_s": 1.0}))
    longer = check("rest:timer", await ok(phone, "rest:adjust", {"workout_id": wid, "delta_s": 0.5}))
    assert longer.ends_at == restarted.ends_at + 500 and longer.duration_s == 1.5
    await asyncio.sleep(1.0)  # the first timer's end and the restarted one's both pass
    assert [t["status"] for t in timers(watch, wid)] == ["running", "running", "running"]
    events = await watch.wait_for("rest:timer", count=4, timeout=3)
    assert events[3]["status"] == "finished" and events[3]["ends_at"] == longer.ends_at
    await asyncio.sleep(0.3)
    assert len(timers(watch, wid)) == 4


async def test_skip_stops_it_and_repeats_its_ack(user) -> None:
    _, phone, watch = user
    wid = await start_workout(phone)
    await ok(phone, "rest:start", {"workout_id": wid, "duration_s": 0.4})
    skipped = await ok(watch, "rest:skip", {"workout_id": wid})
    assert check("rest:timer", skipped).status == "skipped"
    assert await ok(phone, "rest:skip", {"workout_id": wid}) == skipped
    await asyncio.sleep(0.8)
    assert [t["status"] for t in timers(phone, wid)] == ["running", "skipped"]
    assert (await error(phone, "rest:adjust", {"workout_id": wid, "delta_s": 15}))["code"] == "conflict"


async def test_adjusting_into_the_past_finishes_now(user) -> None:
    _, phone, _ = user
    wid = await start_workout(phone)
    await ok(phone, "rest:start", {"workout_id": wid, "duration_s": 60})
    finished = check("rest:timer", await ok(phone, "rest:adjust", {"workout_id": wid, "delta_s": -90}))
    assert finished.status == "finished" and finished.ends_at <= finished.server_time
    await asyncio.sleep(0.4)
    assert [t["status"] for t in timers(phone, wid)] == ["running", "finished"]


async def test_a_timer_with_no_device_online_is_in_sync(user, server: str) -> None:
    uid, phone, watch = user
    wid = await start_workout(phone)
    seq_before = (await ok(phone, "rest:start", {"workout_id": wid, "duration_s": 0.3}))["seq"]
    await phone.close()
    await watch.close()
    await asyncio.sleep(0.8)
    back = await Device().connect(server, {"token": token(uid), "device_id": "phone"})
    try:
        (ready,) = await back.wait_for("session:ready")
        rest = check("session:ready", ready).active_workout.rest
        assert rest is not None and rest.status == "finished"
        reply = await ok(back, "workout:sync", {"workout_id": wid, "since_seq": seq_before})
        assert [(e["event"], e["data"]["status"]) for e in reply["events"]] == [("rest:timer", "finished")]
    finally:
        await back.close()


async def test_a_fire_takes_at_most_its_share_and_says_when_the_next_is_due(redis_url: str, monkeypatch) -> None:
    """The scheduler sleeps until the time a fire reports: the next due timer, one due now
    when the call took its most, one moved later meanwhile (by its new end)."""
    async def no_history(_user: str, _exercise: str) -> bytes:
        return b"{}"

    monkeypatch.setattr(live_state, "TIMERS_PER_CALL", 1)
    keys = Keys(f"fire{uuid.uuid4().hex[:6]}:")
    users = [u for u in (f"u{n}" for n in range(200)) if shard_of(u) == 0][:4]
    redis, line = redis_client(redis_url), ScriptLine(redis_url)
    live = LiveState(redis, line, keys, no_history, log_cap=100)
    try:
        wids = {u: uuid.uuid4() for u in users}
        for u, w in wids.items():
            await live.start(u, p.WorkoutStart(workout_id=w))
        now_users, later, moved = users[:2], users[2], users[3]
        for u in now_users:
            await live.start_rest(u, p.RestStart(workout_id=wids[u], duration_s=0.001))
        await asyncio.sleep(0.005)  # due after them: ties would be ordered by key
        await live.start_rest(moved, p.RestStart(workout_id=wids[moved], duration_s=0.001))
        await live.start_rest(later, p.RestStart(workout_id=wids[later], duration_s=60))
        later_end = int(await redis.hget(keys.workout(later, str(wids[later]))[0], "rest_ends_at"))
        moved_state = keys.workout(moved, str(wids[moved]))[0]
        moved_end = now_ms() + 30_000
        await redis.hset(moved_state, "rest_ends_at", moved_end)  # its queue entry is stale now
        await asyncio.sleep(0.01)

        fired = [await live.fire_due_timers([0]) for _ in range(3)]
        assert [f[0][1] for f in fired] == [1, 1, 0]
        assert fired[0][0][2] <= now_ms() and fired[1][0][2] <= now_ms()  # more are due: fire again now
        assert fired[2][0][2] == moved_end  # the stale one is back in the queue, by its new end
        assert await redis.zscore(keys.due(0), moved_state) == moved_end
        assert (await live.fire_due_timers([0]))[0][1:] == (0, moved_end)
        await redis.zrem(keys.due(0), moved_state)
        assert (await live.fire_due_timers([0]))[0][1:] == (0, later_end)
    finally:
        await line.aclose()
        await redis.aclose()
