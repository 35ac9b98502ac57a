"""The devices-per-user limit, across processes, and what a dead process leaves behind."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
import redis.asyncio as aioredis
import socketio

from realtime.core.keys import Keys
from realtime.transport.ws_frames import TEXT

from .clients import Device, token
from .conftest import make_settings
from .servers import in_process
from .test_edge import RawClient
from .test_ws_frames import client_frame

pytestmark = pytest.mark.every_redis


async def test_a_user_has_at_most_the_limit_of_devices(redis_url: str, database_url: str) -> None:
    settings = make_settings(redis_url, database_url, max_devices_per_user=2)
    uid = f"user-{uuid.uuid4().hex[:8]}"
    async with in_process(settings) as url:
        phone = await Device().connect(url, {"token": token(uid), "device_id": "phone"})
        watch = await Device().connect(url, {"token": token(uid), "device_id": "watch"})
        try:
            tablet = Device()
            with pytest.raises(socketio.exceptions.ConnectionError):
                await tablet.connect(url, {"token": token(uid), "device_id": "tablet"})
            assert tablet.connect_error["data"] == {"code": "conflict",
                                                    "message": "too many devices connected (limit 2)"}
            # The same device reconnecting takes no new place.
            again = await Device().connect(url, {"token": token(uid), "device_id": "phone"})
            await again.wait_for("session:ready")
            await again.close()
            await watch.close()
            tablet = await Device().connect(url, {"token": token(uid), "device_id": "tablet"})
            await tablet.wait_for("session:ready")
            await tablet.close()
        finally:
            await phone.close()


async def test_a_user_connecting_in_a_loop_is_refused_until_the_rate_allows(
    redis_url: str, database_url: str
) -> None:
    # Each connect of a device replaced its last connection and told every room of the user: a
    # client reconnecting in a loop sent each room member some 200 presence events a second.
    settings = make_settings(redis_url, database_url, connect_rate_per_s=2.0, connect_burst=3)
    uid = f"user-{uuid.uuid4().hex[:8]}"
    auth = {"token": token(uid), "device_id": "phone"}
    async with in_process(settings) as one, in_process(settings) as two:
        devices = [await Device().connect(url, auth) for url in (one, two, one)]
        await devices[-1].wait_for("session:ready")
        refused = Device()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await refused.connect(two, {"token": token(uid), "device_id": "watch"})
        error = refused.connect_error["data"]
        assert error["code"] == "rate_limited" and 0 < error["details"]["retry_after_ms"] <= 500, error
        # The refusal changed nothing: the last connection is not replaced, the watch not counted.
        await asyncio.sleep(0.3)
        assert devices[-1].sio.connected and [e for e, _ in devices[-1].events if e == "session:expired"] == []
        client = aioredis.Redis.from_url(redis_url)
        try:
            assert list((await client.hgetall(Keys(settings.redis_prefix).connections(uid))).values()) == [b"phone"]
        finally:
            await client.aclose()
        await asyncio.sleep(error["details"]["retry_after_ms"] / 1000)
        watch = await Device().connect(two, {"token": token(uid), "device_id": "watch"})
        await watch.wait_for("session:ready")
        # Another user is not held back by this one's rate.
        other = await Device().connect(one, {"token": token(f"other-{uid}"), "device_id": "phone"})
        await other.wait_for("session:ready")
        for device in (devices[-1], watch, other):
            await device.close()


async def test_connections_of_a_dead_process_do_not_count(redis_url: str, database_url: str) -> None:
    settings = make_settings(redis_url, database_url, max_devices_per_user=1)
    uid = f"user-{uuid.uuid4().hex[:8]}"
    client = aioredis.Redis.from_url(redis_url)
    try:
        # What a process killed with -9 leaves: an entry; its heartbeat ran out, so peers found it dead.
        keys = Keys(settings.redis_prefix)
        await client.hset(keys.connections(uid), "deadbeef|sid1", "old-phone")
        await client.zadd(keys.processes()[1], {"deadbeef": time.time()})
        async with in_process(settings) as url:
            device = await Device().connect(url, {"token": token(uid), "device_id": "new-phone"})
            await device.wait_for("session:ready")
            await device.close()
        assert await client.hgetall(keys.connections(uid)) == {}
    finally:
        await client.aclose()


async def test_a_process_found_dead_while_alive_comes_back_as_a_new_one_and_the_limit_holds(
    redis_url: str, database_url: str
) -> None:
    """A process frozen or cut off past the heartbeat's TTL is found dead by a peer, which drops its
    devices. When it beats again it must not go on as itself, its connections uncounted: it takes
    a new id and ends its connections, the clients reconnect, and each is counted again."""
    settings = make_settings(redis_url, database_url, max_devices_per_user=1)
    uid = f"user-{uuid.uuid4().hex[:8]}"
    keys = Keys(settings.redis_prefix)
    live, dead = keys.processes()
    client = aioredis.Redis.from_url(redis_url)
    phone = socketio.AsyncClient(reconnection=True, reconnection_delay=0.1, reconnection_delay_max=0.2)
    ready: list[dict] = []
    phone.on("session:ready", lambda data: ready.append(data))
    try:
        async with in_process(settings) as url:
            await phone.connect(url, auth={"token": token(uid), "device_id": "phone"}, transports=["websocket"])
            while not ready:
                await asyncio.sleep(0.02)
            (old,) = [p.decode() for p in await client.zrange(live, 0, -1)]
            # What a peer does on finding it dead (heartbeat.lua, devices_join.lua).
            await client.zrem(live, old)
            await client.zadd(dead, {old: time.time()})
            await client.delete(keys.connections(uid))
            for _ in range(200):  # a heartbeat (3 s) to notice, then the reconnect
                if len(ready) == 2:
                    break
                await asyncio.sleep(0.05)
            assert len(ready) == 2 and phone.connected, ready
            (new,) = [p.decode() for p in await client.zrange(live, 0, -1)]
            assert new != old and await client.zscore(dead, new) is None
            assert list((await client.hgetall(keys.connections(uid))).values()) == [b"phone"]
            tablet = Device()
            with pytest.raises(socketio.exceptions.ConnectionError):
                await tablet.connect(url, {"token": token(uid), "device_id": "tablet"})
            assert tablet.connect_error["data"]["code"] == "conflict"
            await phone.disconnect()
    finally:
        await phone.shutdown()  # its connection the server ended is let go too
        await client.aclose()


async def test_a_device_has_one_connection_the_newest_on_any_process(redis_url: str, database_url: str) -> None:
    # One device_id opening connection after connection (a hostile client) held them all: every
    # one of them got the user's events and its own rate limit. The newest replaces the rest,
    # on this process or another, and the replaced one hears why.
    settings = make_settings(redis_url, database_url, max_devices_per_user=2)
    uid = f"user-{uuid.uuid4().hex[:8]}"
    async with in_process(settings) as one, in_process(settings) as two:
        first = await Device().connect(one, {"token": token(uid), "device_id": "phone"})
        await first.wait_for("session:ready")
        watch = await Device().connect(one, {"token": token(uid), "device_id": "watch"})
        try:
            devices = [first]
            for url in (one, two, two, one):
                newer = await Device().connect(url, {"token": token(uid), "device_id": "phone"})
                await newer.wait_for("session:ready")
                assert await devices[-1].wait_for("session:expired") == [{"reason": "replaced"}]
                for _ in range(50):
                    if not devices[-1].sio.connected:
                        break
                    await asyncio.sleep(0.05)
                assert not devices[-1].sio.connected
                devices.append(newer)
            client = aioredis.Redis.from_url(redis_url)
            try:
                entries = await client.hgetall(Keys(settings.redis_prefix).connections(uid))
            finally:
                await client.aclose()
            assert sorted(entries.values()) == [b"phone", b"watch"]
            # The limit counts the one phone once; a third device is refused as ever.
            with pytest.raises(socketio.exceptions.ConnectionError):
                await Device().connect(two, {"token": token(uid), "device_id": "tablet"})
            await devices[-1].close()
        finally:
            await watch.close()


async def test_a_connection_closed_while_it_was_being_admitted_leaves_nothing(
    redis_url: str, database_url: str
) -> None:
    # A client that closed its socket while the server was still admitting it (on Redis) had its
    # disconnect ignored: its session, device entry and subscription stayed until its token
    # expired, and a loop of such connects locked the user out and slowed Redis for everyone.
    settings = make_settings(redis_url, database_url)
    uid = f"user-{uuid.uuid4().hex[:8]}"
    key = Keys(settings.redis_prefix).connections(uid)
    client = aioredis.Redis.from_url(redis_url)
    async with in_process(settings) as url:
        try:
            for i in range(40):
                raw, _ = await RawClient.open(url)
                auth = {"token": token(uid), "device_id": f"d{i % 12}"}
                raw.send(client_frame(TEXT, b"40" + json.dumps(auth).encode()))
                await raw.close()
            for _ in range(100):
                if not await client.exists(key):
                    break
                await asyncio.sleep(0.05)
            assert await client.hgetall(key) == {}
            devices = [await Device().connect(url, {"token": token(uid), "device_id": f"d{i}"}) for i in range(10)]
            try:
                with pytest.raises(socketio.exceptions.ConnectionError):
                    await Device().connect(url, {"token": token(uid), "device_id": "eleventh"})
            finally:
                for device in devices:
                    await device.close()
        finally:
            await client.aclose()


async def test_a_device_connecting_to_two_processes_at_once_keeps_one_connection(
    redis_url: str, database_url: str
) -> None:
    # The word that a connection was replaced goes out on the user's channel, which the other
    # process may not listen to yet: bursts of one device_id at two processes left two live.
    settings = make_settings(redis_url, database_url, max_devices_per_user=3)
    uid = f"user-{uuid.uuid4().hex[:8]}"
    async with in_process(settings) as one, in_process(settings) as two:
        devices: list[Device] = []
        try:
            for _ in range(3):
                burst = [Device().connect(url, {"token": token(uid), "device_id": "phone"})
                         for url in (one, two) * 6]
                devices += [d for d in await asyncio.gather(*burst, return_exceptions=True) if isinstance(d, Device)]
            for _ in range(60):
                if sum(d.sio.connected for d in devices) <= 1:
                    break
                await asyncio.sleep(0.05)
            assert sum(d.sio.connected for d in devices) == 1
            client = aioredis.Redis.from_url(redis_url)
            try:
                assert list((await client.hgetall(Keys(settings.redis_prefix).connections(uid))).values()) == [b"phone"]
            finally:
                await client.aclose()
        finally:
            await asyncio.gather(*(d.close() for d in devices if d.sio.connected))
