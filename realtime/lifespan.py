"""The lifespan owns every pool, client and background task of one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

from redis.asyncio import Redis

from db.pool import create_pool

from .services import Services

log = logging.getLogger("liveset")

BackgroundTask = Callable[[Services], Awaitable[None]]


def redis_client(url: str) -> Redis:
    # Timeouts keep a Redis outage from hanging acks; the pool reconnects by itself.
    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)


async def _supervised(name: str, task: BackgroundTask, services: Services) -> None:
    """A background loop that ends unexpectedly takes the process down, loudly.

    Loops handle the failures they expect (a Redis blip) themselves; anything
    else means this process no longer does its job, and a restart by the
    process manager is better than a server that silently stopped firing timers.
    """
    try:
        await task(services)
    except asyncio.CancelledError:
        raise
    except BaseException:
        log.critical("background task crashed; stopping the process", extra={"task": name}, exc_info=True)
        os.kill(os.getpid(), signal.SIGTERM)
        raise


@contextlib.asynccontextmanager
async def lifespan(services: Services, background: dict[str, BackgroundTask]) -> AsyncIterator[None]:
    settings = services.settings
    services.redis = redis_client(settings.redis_url)
    try:
        await services.redis.ping()
        services.db = await create_pool(settings.database_url)
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_supervised(n, t, services), name=n) for n, t in background.items()]
            log.info("liveset started", extra={"pid": os.getpid()})
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
    finally:
        if services.db is not None:
            await services.db.close()
            services.db = None
        await services.redis.aclose()
        services.redis = None
        log.info("liveset stopped", extra={"pid": os.getpid()})
