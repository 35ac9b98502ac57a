"""The lifespan owns every pool, client and background task of one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import socketio
from redis.asyncio import BlockingConnectionPool, Redis

from db.pool import create_pool
from realtime.core import gc_tuning, loop_lag
from realtime.core.keys import Keys
from realtime.live import idle_reaper
from realtime.live.devices import Devices
from realtime.live.fanout import Fanout
from realtime.live.live_state import LiveState
from realtime.live.persist import Writer
from realtime.live.scheduler import TimerScheduler
from realtime.live.script_line import ScriptLine
from realtime.live.services import Runtime, Services
from realtime.transport.sockets import LocalSockets

if TYPE_CHECKING:
    from realtime.handlers.rooms import RoomHandlers

log = logging.getLogger("liveset")


REDIS_CONNECTIONS = 32


def redis_client(url: str) -> Redis:
    """A bounded pool: a burst of events waits for one of 32 connections instead of
    opening hundreds at once. Timeouts keep an outage from hanging acks; the pool
    reconnects by itself."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=REDIS_CONNECTIONS, timeout=5, socket_connect_timeout=2, socket_timeout=5,
        health_check_interval=30,
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes its connections


async def _supervised(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    """A background loop that ends unexpectedly takes the process down, loudly.

    Loops handle the failures they expect (a Redis blip) themselves; anything
    else means this process no longer does its job, and a restart by the
    process manager is better than a server that silently stopped firing timers.
    """
    try:
        await loop()
    except asyncio.CancelledError:
        raise
    except BaseException:
        log.critical("background task crashed; stopping the process", extra={"task": name}, exc_info=True)
        os.kill(os.getpid(), signal.SIGTERM)
        raise


@contextlib.asynccontextmanager
async def lifespan(
    services: Services, sio: socketio.AsyncServer, load_baseline: Callable[[str, str], Awaitable[bytes]],
    rooms: RoomHandlers, ready_again: Callable[[], Coroutine[Any, Any, None]],
    end_replaced: Callable[[str], Coroutine[Any, Any, None]],
) -> AsyncIterator[None]:
    settings = services.settings
    redis = redis_client(settings.redis_url)
    line = ScriptLine(settings.redis_url)
    pool = None
    try:
        await redis.ping()
        pool = await create_pool(settings.database_url)
        keys = Keys(settings.redis_prefix)
        live = LiveState(redis, line, keys, load_baseline, settings.workout_log_cap,
                         (settings.user_budget_per_s, settings.user_budget_burst), settings.ended_keep_s)
        sockets = LocalSockets(sio, settings.max_queued_packets, services.metrics.slow_consumers.inc)
        fanout = Fanout(settings.redis_url, sockets, keys, services.metrics)
        fanout.on_kick = rooms.on_kick
        fanout.on_restored = ready_again
        fanout.on_replaced = end_replaced
        timers = TimerScheduler(live, services.metrics)
        devices = Devices(line, live.scripts, keys, settings.max_devices_per_user,
                          (settings.connect_rate_per_s, settings.connect_burst),
                          on_dead=rooms.purge_dead, on_revived=sockets.drop_all)
        await devices.beat()
        services.runtime = Runtime(redis=redis, db=pool, live=live, fanout=fanout, timers=timers, devices=devices,
                                   writer=Writer(pool))
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(_supervised("fanout", fanout.run), name="fanout"),
                group.create_task(_supervised("timers", timers.run), name="timers"),
                group.create_task(_supervised("devices", devices.run), name="devices"),
                group.create_task(
                    _supervised("idle", lambda: idle_reaper.run(services.runtime, settings.workout_idle_s)),
                    name="idle",
                ),
                group.create_task(_supervised("gc", gc_tuning.run_collections), name="gc"),
                group.create_task(_supervised("loop_lag", lambda: loop_lag.watch(services.metrics)),
                                  name="loop_lag"),
            ]
            # Serve only once the pub/sub connection is up, so the first device's join is subscribed.
            await asyncio.wait_for(fanout.subscriber.ready(), 5)
            with gc_tuning.tuned(services.metrics):
                log.info("liveset started", extra={"pid": os.getpid()})
                try:
                    yield
                finally:
                    for task in tasks:
                        task.cancel()
    finally:
        if pool is not None:
            await pool.close()
        await line.aclose()
        await redis.aclose()
        log.info("liveset stopped", extra={"pid": os.getpid()})
