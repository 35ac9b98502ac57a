"""The pub/sub connection (realtime/live/subscriber.py) against the test Valkey, connection kills included."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
import socketio

from realtime.core.keys import Keys
from realtime.core.metrics import Metrics
from realtime.live.fanout import Fanout
from realtime.live.subscriber import Subscriber
from realtime.transport.sockets import LocalSockets

from .clients import Device, check, ok


@contextlib.asynccontextmanager
async def running(redis_url: str) -> AsyncIterator[tuple[Subscriber, list[tuple[bytes, bytes]]]]:
    got: list[tuple[bytes, bytes]] = []
    subscriber = Subscriber(redis_url, lambda channel, data: got.append((channel, data)))
    task = asyncio.create_task(subscriber.run())
    try:
        await asyncio.wait_for(subscriber.ready(), 5)
        yield subscriber, got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _eventually(check: object, timeout: float = 5) -> None:
    for _ in range(int(timeout / 0.02)):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not within the time")


async def test_what_is_published_after_subscribe_returns_arrives_in_order_and_stops_after_unsubscribe(
    redis_url: str,
) -> None:
    channel = f"sub:{uuid.uuid4().hex}"
    publisher = aioredis.Redis.from_url(redis_url)
    try:
        async with running(redis_url) as (subscriber, got):
            await subscriber.subscribe(channel)
            for n in range(50):  # no wait: subscribe returned once Redis confirmed it
                await publisher.publish(channel, f"m{n}")
            await _eventually(lambda: len(got) == 50)
            assert got == [(channel.encode(), f"m{n}".encode()) for n in range(50)]
            await subscriber.unsubscribe(channel)
            assert await publisher.publish(channel, "after") == 0  # nobody listens any more
    finally:
        await publisher.aclose()


async def test_a_killed_connection_is_reopened_and_every_channel_subscribed_again(redis_url: str) -> None:
    channels = [f"sub:{uuid.uuid4().hex}" for _ in range(3)]
    publisher = aioredis.Redis.from_url(redis_url)
    try:
        async with running(redis_url) as (subscriber, got):
            for channel in channels:
                await subscriber.subscribe(channel)
            assert await publisher.execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 1
            for _ in range(250):  # `run` reconnects with backoff and subscribes each channel again
                if all(count == 1 for _, count in await publisher.pubsub_numsub(*channels)):
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("the channels were not subscribed again")
            got.clear()
            for channel in channels:
                await publisher.publish(channel, "back")
            await _eventually(lambda: len(got) == 3)
            assert sorted(got) == sorted((c.encode(), b"back") for c in channels)
    finally:
        await publisher.aclose()


async def test_every_socket_that_listens_waits_until_the_channel_is_subscribed(redis_url: str) -> None:
    """Two devices of a user arrive at once: the second must not go on to session:ready while
    the first one's SUBSCRIBE is still on its way, or it misses what is published meanwhile."""
    sockets = LocalSockets(socketio.AsyncServer(async_mode="asgi"), max_queued=100, on_cut_off=lambda: None)
    fanout = Fanout(redis_url, sockets, Keys("t:"), Metrics())
    channel = f"fan:{uuid.uuid4().hex}"
    task = asyncio.create_task(fanout.run())
    admin = aioredis.Redis.from_url(redis_url)
    try:
        await asyncio.wait_for(fanout.subscriber.ready(), 5)
        await admin.execute_command("CLIENT", "PAUSE", 300, "ALL")  # Redis answers nothing for 300 ms
        first = asyncio.create_task(fanout.listen(channel))
        second = asyncio.create_task(fanout.listen(channel))
        await asyncio.sleep(0.1)
        assert not first.done() and not second.done()
        await asyncio.wait_for(asyncio.gather(first, second), 5)
        assert await admin.pubsub_numsub(channel) == [(channel.encode(), 1)]
    finally:
        await admin.aclose()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_when_the_pubsub_connection_is_back_every_device_gets_session_ready_again(
    user: tuple[str, Device, Device], redis_url: str,
) -> None:
    """What was published while the connection was down is lost, and a workout's last event
    lost shows no gap: so each device gets session:ready again, with the snapshot as it
    stands, and live events flow again after it."""
    _, phone, watch = user
    workout_id = str(uuid.uuid4())
    await ok(phone, "workout:start", {"workout_id": workout_id, "plan": [{"exercise_id": "squat", "sets": 3}]})
    await watch.wait_seq(workout_id, 1)
    admin = aioredis.Redis.from_url(redis_url)
    try:
        assert await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 1
    finally:
        await admin.aclose()
    for device in (phone, watch):
        again = (await device.wait_for("session:ready", count=2))[1]
        check("session:ready", again)
        assert again["active_workout"]["workout_id"] == workout_id
        assert again["active_workout"]["seq"] == 1
    logged = await ok(phone, "set:complete", {"workout_id": workout_id, "set_id": str(uuid.uuid4()),
                                              "exercise_id": "squat", "weight_kg": 100, "reps": 5})
    _, delivered = await watch.wait_seq(workout_id, logged["seq"])
    assert delivered["set"]["set_id"] == logged["set"]["set_id"]
