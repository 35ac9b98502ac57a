"""Ends live workouts nobody has touched for `workout_idle_s` (default 12 h).

A forgotten workout would block the user's next one. One with sets is
completed — the work is real and is stored like any other — and one without is
discarded. Every process runs this loop; the scripts' idle guard and their
idempotency make two processes reaping the same workout harmless, and a user
who comes back between the look and the act keeps their workout.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from realtime.core import protocol as p
from realtime.core.errors import AppError
from realtime.core.keys import SHARDS

from . import persist
from .live_state import now_ms
from .room_state import workout_ended
from .services import Runtime

log = logging.getLogger("liveset.idle")

AUTO_NOTE = "ended automatically after a long time without activity"


async def reap_once(runtime: Runtime, idle_s: int) -> int:
    """End every idle workout found now; returns how many were ended."""
    idle_since = now_ms() - idle_s * 1000
    ended = 0
    for shard in range(SHARDS):
        for user_id, workout_id, set_count in await runtime.live.idle_workouts(shard, idle_since):
            try:
                if set_count > 0:
                    payload = p.WorkoutComplete(workout_id=uuid.UUID(workout_id), notes=AUTO_NOTE)
                    _, room_id = await persist.complete(runtime.live, runtime.writer, user_id, payload, idle_since)
                else:
                    _, room_id = await runtime.live.discard(user_id, workout_id, idle_since)
                await workout_ended(runtime, user_id, room_id)
                ended += 1
            except AppError as exc:
                log.info("idle workout not ended", extra={"workout_id": workout_id, "reason": exc.message})
    return ended


async def run(runtime: Runtime, idle_s: int) -> None:
    interval = min(60.0, idle_s / 4)
    while True:
        await asyncio.sleep(interval)
        try:
            ended = await reap_once(runtime, idle_s)
        except AppError as exc:
            log.warning("idle reaper could not look", extra={"error": exc.message})
            continue
        if ended:
            log.info("ended idle workouts", extra={"count": ended})
