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
asgi_release.py), so automatic collection is off and a background loop runs a
full collection every FULL_COLLECT_S, and a young one (generations 0 and 1:
only what was made since the last collection) once GROWTH_LIMIT more container
objects exist than after the last one, as when thousands of devices connect.
A full collection's pause grows with everything alive, a young one's with
what is new: the three growth collections of a 5,000-client storm run took
0.47, 1.10 and 1.21 s as full ones, 0.46, 0.55 and 1.01 s as young ones.
Objects made during start-up are frozen (never scanned again). Every
collection's pause goes to /metrics.
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


async def run_collections() -> None:
    last = time.monotonic()
    while True:
        await asyncio.sleep(CHECK_S)
        # While collection is off, the young count is container allocations minus
        # deallocations since the last collection: the growth of what could be garbage.
        if time.monotonic() - last >= FULL_COLLECT_S:
            gc.collect()
            last = time.monotonic()
        elif gc.get_count()[0] >= GROWTH_LIMIT:
            gc.collect(1)
