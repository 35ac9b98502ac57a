"""workout:complete: store the workout in Postgres exactly once, then retire it in Redis.

Exactly once is "at least once plus an idempotent write": the live state is
frozen as `completing` (lua/workout_complete_begin.lua), the workout, its sets
and the records it raised are written in one statement (atomic by itself,
batched with other completions under load: Writer) that does nothing if the
workout is already stored, and only then is the live state retired with the
workout:completed event (lua/workout_complete_finish.lua). A process killed
anywhere in between leaves `completing`; the next attempt stores again
(harmlessly) and finishes. When Postgres refuses before the commit, the
workout goes back to live, nothing lost; when the commit's outcome is unknown it
stays `completing`, so no set can slip in after a row that may already exist.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import msgspec

from db import workouts as db_workouts
from realtime.core import protocol as p
from realtime.core.errors import AppError

from .live_state import LiveState

log = logging.getLogger("liveset.persist")

_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


# What Postgres refuses for the data itself (a value out of its range, a constraint): the same
# statement would fail again, so the workout must not be offered as "retry".
_PERMANENT = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


class _NotStored(Exception):
    """Postgres refused before the commit: nothing was written."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.permanent = isinstance(exc, _PERMANENT)


class Rows(msgspec.Struct, frozen=True):
    """One completed workout as the rows db.workouts.store_completed takes."""

    workout: tuple[Any, ...]
    sets: list[tuple[Any, ...]]
    records: list[tuple[Any, ...]]


def rows_of(user_id: str, w: p.WorkoutSnapshot, notes: str | None) -> Rows:
    wid = w.workout_id
    ended_at = w.ended_at if w.ended_at is not None else w.started_at
    workout = (
        user_id, wid, w.name, notes, w.room_id, w.started_at, ended_at, w.stats.duration_s, w.stats.total_volume_kg,
        w.stats.set_count, len({s.exercise_id for s in w.sets}),
        msgspec.json.encode(w.plan).decode() if w.plan is not None else None,
    )
    sets = [
        (user_id, wid, s.set_id, i, s.exercise_id, s.set_type, s.weight_kg, s.reps, s.duration_s, s.distance_m,
         s.rpe, s.notes, s.completed_at)
        for i, s in enumerate(w.sets)
    ]
    by_id = {s.set_id: s for s in w.sets}
    records = [
        (user_id, by_id[r.set_id].exercise_id, r.type, r.weight_kg or 0.0, r.value, wid, r.set_id,
         by_id[r.set_id].completed_at)
        for r in w.records
    ]
    return Rows(workout, sets, records)


class Writer:
    """Stores completed workouts, batching those that arrive while a write is in flight.

    Idle, a workout is written at once, alone; under load up to MAX_BATCH wait
    for one of `writers` (2) statements in flight and then go in one statement
    together. Per-statement cost dominates at 20 sets: batching took the storage
    benchmark from 880 to 1,700-1,900 workouts/s (docs/performance.md).
    A batch that Postgres refuses is retried one workout at a time, so one bad
    workout fails alone.
    """

    MAX_BATCH = 32

    def __init__(self, pool: asyncpg.Pool, writers: int = 2) -> None:
        self.pool = pool
        self.writers = writers
        self.busy = 0
        self.pending: dict[tuple[str, str], tuple[Rows, asyncio.Future[None]]] = {}

    async def store(self, rows: Rows) -> None:
        """Raises _NotStored when nothing was written; any other error leaves it unknown."""
        key = (rows.workout[0], str(rows.workout[1]))
        if key in self.pending:  # the same workout twice (two devices completing): one write serves both
            return await asyncio.shield(self.pending[key][1])
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending[key] = (rows, future)
        if self.busy < self.writers:
            self._next()
        await asyncio.shield(future)

    def _next(self) -> None:
        keys = list(self.pending)[: self.MAX_BATCH]
        batch = [self.pending.pop(k) for k in keys]
        self.busy += 1
        asyncio.get_running_loop().create_task(self._write(batch))

    async def _write(self, batch: list[tuple[Rows, asyncio.Future[None]]]) -> None:
        try:
            await self._statement([rows for rows, _ in batch])
            outcome: list[BaseException | None] = [None] * len(batch)
        except asyncpg.PostgresError as exc:
            if len(batch) == 1:
                outcome = [_NotStored(exc)]
            else:
                outcome = []
                for rows, _ in batch:
                    try:
                        await self._statement([rows])
                        outcome.append(None)
                    except asyncpg.PostgresError as one:
                        outcome.append(_NotStored(one))
                    except _DB_ERRORS as one:
                        outcome.append(one)
        except _NotStored as exc:
            outcome = [exc] * len(batch)
        except _DB_ERRORS as exc:
            outcome = [exc] * len(batch)
        finally:
            self.busy -= 1
            if self.pending:
                self._next()
        for (_, future), error in zip(batch, outcome, strict=True):
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

    async def _statement(self, batch: list[Rows]) -> None:
        try:
            conn = await self.pool.acquire()
        except _DB_ERRORS as exc:
            raise _NotStored(exc) from exc
        try:
            await db_workouts.store_completed(
                conn, [r.workout for r in batch], [s for r in batch for s in r.sets],
                [x for r in batch for x in r.records],
            )
        finally:
            await self.pool.release(conn)


async def complete(
    live: LiveState, writer: Writer, user_id: str, payload: p.WorkoutComplete, idle_since: int | None = None
) -> tuple[msgspec.Raw, str | None]:
    """The ack, and the room the workout was started in when this call stored it."""
    wid = str(payload.workout_id)
    begun = await live.complete_begin(user_id, wid, payload.notes, idle_since)
    if isinstance(begun, msgspec.Raw):
        return begun, None  # completed before: the same ack
    snapshot_json, notes = begun
    snapshot = msgspec.json.decode(snapshot_json, type=p.WorkoutSnapshot)
    try:
        await writer.store(rows_of(user_id, snapshot, notes))
    except _NotStored as exc:
        log.warning("could not store a completed workout; it stays live", extra={"error": str(exc)})
        await live.complete_abort(user_id, wid)
        if exc.permanent:
            raise AppError("unstorable", "the workout holds something that cannot be stored; it is still live: "
                           "edit or delete what the reason names, or discard it", {"reason": str(exc)}) from None
        raise AppError("unavailable", "the workout could not be stored; it is still live, retry") from None
    except _DB_ERRORS as exc:
        log.warning("storing a completed workout had an unknown outcome", extra={"error": str(exc)})
        raise AppError("unavailable", "could not confirm the workout was stored; retry") from None
    ack = await live.complete_finish(user_id, wid, len({s.exercise_id for s in snapshot.sets}))
    return ack, snapshot.room_id
