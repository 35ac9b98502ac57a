"""Garbage collection for a process that holds thousands of long-lived objects.

CPython starts a young collection when allocations minus deallocations of
container objects pass a threshold. A server in steady state frees about as many
old objects as it makes new ones (each websocket's pending read, a workout's
previous state), so that count hardly moves while the young generation fills
with objects that outlive it: measured at 2,000 connections and 300 sets/s, a
young collection found 12,000-30,000 objects and stopped the event loop for
30-85 ms, a middle one 100 ms, and full ones 64-294 ms, several times a minute
(`python -m loadtest --users 1000 --rate 300`, docs/performance.md).

The server makes little cyclic garbage (a few hundred objects per second; the
rest, finished connections included, is freed by reference counting: see
asgi_release.py), so automatic collection is off. What grows fast is what
stays: thousands of devices connecting make 100-odd live objects each, and a
collection would only scan them to find them alive (a young collection of
5,000 connections' growth stopped the loop 0.45-1.0 s; connect p99 at 500/s
was 0.7 s). So growth past GROWTH_LIMIT is frozen, which moves it out of the
collector's sight in constant time, and every FULL_COLLECT_S everything is
unfrozen, collected once (the one pause, about 1 s per 5,000 connections) and
frozen again; cyclic garbage waits for that (connect p99 0.7 s -> 0.08-0.12 s,
docs/performance.md). Every collection's pause goes to /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Iterator
from typing import Any

from .metrics import Metrics

FULL_COLLECT_S = 600
GROWTH_LIMIT = 500_000
CHECK_S = 5


@contextlib.contextmanager
def tuned(metrics: Metrics) -> Iterator[None]:
    """GC as described above while the server runs; as it was once it stops (tests run
    the server inside their own process)."""
    gc.freeze()
    gc.disable()
    started = [0.0]

    def observe(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            metrics.gc_pause.labels(str(info["generation"])).observe(time.perf_counter() - started[0])

    gc.callbacks.append(observe)
    try:
        yield
    finally:
        gc.callbacks.remove(observe)
        gc.unfreeze()
        gc.enable()


class Collections:
    """Decides, at each tick, whether to freeze the growth or collect everything."""

    def __init__(self, now: float, growth_limit: int = GROWTH_LIMIT, full_every_s: float = FULL_COLLECT_S) -> None:
        self.growth_limit = growth_limit
        self.full_every_s = full_every_s
        self.last_full = now
        # The young count (container allocations minus deallocations) when growth was last
        # frozen: freezing does not reset it, a collection does.
        self.frozen_at = 0

    def tick(self, now: float) -> None:
        if now - self.last_full >= self.full_every_s:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self.last_full, self.frozen_at = now, 0
        elif gc.get_count()[0] - self.frozen_at >= self.growth_limit:
            gc.freeze()
            self.frozen_at = gc.get_count()[0]


async def run_collections() -> None:
    collections = Collections(time.monotonic())
    while True:
        await asyncio.sleep(CHECK_S)
        collections.tick(time.monotonic())
