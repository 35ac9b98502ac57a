"""Fires rest timers on time from whichever process is alive.

A timer is a timestamp in its shard's due queue (a sorted set). Every process
runs this loop: it sleeps until the earliest due time it knows of — the timers
it started, and each shard's next due time as the last poll reported it — and
fires what is due with one atomic script per shard (lua/timers_fire.lua), so a
timer fires exactly once however many processes wake for it. A poll of every
shard each POLL_S catches timers this process has not heard of; that bounds the
lateness of a timer whose process died before any other process polled.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from realtime.core.keys import SHARDS, shard_of
from realtime.core.metrics import Metrics

from .live_state import LiveState, now_ms

log = logging.getLogger("liveset.timers")

POLL_S = 0.25


class TimerScheduler:
    def __init__(self, live: LiveState, metrics: Metrics) -> None:
        self.live = live
        self.metrics = metrics
        self._next: dict[int, int] = {}  # shard -> earliest due time known here (ms)
        self._wake = asyncio.Event()

    def _learn(self, shard: int, due_ms: int) -> bool:
        known = self._next.get(shard)
        if known is None or due_ms < known:
            self._next[shard] = due_ms
            return True
        return False

    def note(self, user_id: str, ends_at_ms: int) -> None:
        """A timer in this user's shard is due at `ends_at_ms` (started or moved here)."""
        if self._learn(shard_of(user_id), ends_at_ms):
            self._wake.set()

    async def run(self) -> None:
        next_poll = 0
        while True:
            now = now_ms()
            if now >= next_poll:
                shards = list(range(SHARDS))
                next_poll = now + int(POLL_S * 1000)
            else:
                shards = [shard for shard, due in self._next.items() if due <= now]
            for shard in shards:
                self._next.pop(shard, None)
            if shards:
                await self._fire(shards)
            wake_at = min([next_poll, *self._next.values()])
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.0, (wake_at - now_ms()) / 1000))
            except TimeoutError:
                pass

    async def _fire(self, shards: list[int]) -> None:
        try:
            results = await self.live.fire_due_timers(shards)
        except RedisError as exc:
            log.warning("could not fire timers; retrying", extra={"error": str(exc)})
            for shard in shards:
                self._learn(shard, now_ms() + 200)
            return
        for shard, fired, next_due in results:
            if fired:
                self.metrics.timers_fired.inc(fired)
            if next_due >= 0:
                self._learn(shard, next_due)  # keeps an earlier time noted while this call was out
