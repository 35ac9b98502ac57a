"""workout:complete: store the workout in Postgres exactly once, then retire it in Redis.

Exactly once is "at least once plus an idempotent write": the live state is
frozen as `completing` (lua/workout_complete_begin.lua), the workout, its sets
and the records it raised are written in one statement (one round trip,
atomic by itself) that does nothing if the workout is already stored, and only then is the live state retired with the
workout:completed event (lua/workout_complete_finish.lua). A process killed
anywhere in between leaves `completing`; the next attempt stores again
(harmlessly) and finishes. When Postgres refuses before the commit, the
workout goes back to live, nothing lost; when the commit's outcome is unknown it
stays `completing`, so no set can slip in after a row that may already exist.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import msgspec

from db import workouts as db_workouts

from . import protocol as p
from .errors import AppError
from .live_state import LiveState

log = logging.getLogger("liveset.persist")

_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class _NotStored(Exception):
    """Postgres refused before the commit: nothing was written."""


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


async def _store(pool: asyncpg.Pool, user_id: str, w: p.WorkoutSnapshot, notes: str | None) -> None:
    wid = UUID(w.workout_id)
    ended_at = w.ended_at if w.ended_at is not None else w.started_at
    workout = (
        user_id, wid, w.name, notes, UUID(w.room_id) if w.room_id else None, _at(w.started_at), _at(ended_at),
        w.stats.duration_s, w.stats.total_volume_kg, w.stats.set_count, len({s.exercise_id for s in w.sets}),
        msgspec.to_builtins(w.plan) if w.plan is not None else None,
    )
    sets = [
        (UUID(s.set_id), i, s.exercise_id, s.set_type, s.weight_kg, s.reps, s.duration_s, s.distance_m, s.rpe,
         s.notes, _at(s.completed_at))
        for i, s in enumerate(w.sets)
    ]
    by_id = {s.set_id: s for s in w.sets}
    records = [
        (by_id[r.set_id].exercise_id, r.type, r.weight_kg or 0.0, r.value, UUID(r.set_id),
         _at(by_id[r.set_id].completed_at))
        for r in w.records
    ]
    try:
        conn = await pool.acquire()
    except _DB_ERRORS as exc:
        raise _NotStored(str(exc)) from exc
    try:
        # One statement, atomic by itself: an error reported by the server means
        # nothing was written; a connection lost on the way leaves it unknown.
        await db_workouts.store_completed(conn, workout, sets, records)
    except asyncpg.PostgresError as exc:
        raise _NotStored(str(exc)) from exc
    finally:
        await pool.release(conn)


async def complete(
    live: LiveState, pool: asyncpg.Pool, user_id: str, payload: p.WorkoutComplete, idle_since: int | None = None
) -> msgspec.Raw:
    wid = str(payload.workout_id)
    begun = await live.complete_begin(user_id, wid, payload.notes, idle_since)
    if isinstance(begun, msgspec.Raw):
        return begun  # completed before: the same ack
    snapshot_json, notes = begun
    snapshot = msgspec.json.decode(snapshot_json, type=p.WorkoutSnapshot)
    try:
        await _store(pool, user_id, snapshot, notes)
    except _NotStored as exc:
        log.warning("could not store a completed workout; it stays live", extra={"error": str(exc)})
        await live.complete_abort(user_id, wid)
        raise AppError("unavailable", "the workout could not be stored; it is still live, retry") from None
    except _DB_ERRORS as exc:
        log.warning("storing a completed workout had an unknown outcome", extra={"error": str(exc)})
        raise AppError("unavailable", "could not confirm the workout was stored; retry") from None
    return await live.complete_finish(user_id, wid, len({s.exercise_id for s in snapshot.sets}))
