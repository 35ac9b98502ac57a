"""How late the event loop runs: the lateness of a short sleep, on /metrics.

Every event this process handles waits for its loop, so a stall of 50 ms (a
collection, a long callback, a core taken by another process) delays every
event in flight by as much. Seen from outside, such a stall looks like any
other latency; this histogram tells one in this process from one elsewhere
(the load tool reports it beside the latencies it measures, and times its own
workers' stalls with `lateness` too).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from .metrics import Metrics

INTERVAL_S = 0.05  # short enough to see a 25 ms stall, 20 wake-ups a second


async def lateness(interval_s: float) -> AsyncIterator[float]:
    """Seconds each sleep of `interval_s` woke late, one after another, forever."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(interval_s)
        yield max(0.0, loop.time() - start - interval_s)


async def watch(metrics: Metrics) -> None:
    async for late in lateness(INTERVAL_S):
        metrics.loop_lag.observe(late)
