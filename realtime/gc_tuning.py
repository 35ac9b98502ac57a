"""Garbage collection for a process that holds thousands of long-lived objects.

Every connection keeps hundreds of objects alive for as long as a workout
lasts. CPython's full (oldest-generation) collection scans all of them: with
2,000 connections that is a 100-300 ms stop of the event loop, triggered by
allocation counts, several times a minute under load (measured with
`python -m loadtest --users 1000 --rate 300`; see docs/performance.md). Young
collections stay as they are — they are cheap and free most cyclic garbage.
Full collections are taken off the allocation-driven schedule and run by a
background loop every FULL_COLLECT_S instead: the same work, at a known rate,
not in bursts while a workout is logging sets. Objects made during start-up are
frozen (never scanned again). Every collection's pause goes to /metrics.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from .metrics import Metrics

FULL_COLLECT_S = 600
_NEVER = 1_000_000_000


def tune(metrics: Metrics) -> None:
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, _NEVER)
    started = [0.0]

    def observe(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            metrics.gc_pause.labels(str(info["generation"])).observe(time.perf_counter() - started[0])

    if not any(getattr(cb, "__qualname__", "") == observe.__qualname__ for cb in gc.callbacks):
        gc.callbacks.append(observe)


async def run_full_collections() -> None:
    while True:
        await asyncio.sleep(FULL_COLLECT_S)
        gc.collect()
