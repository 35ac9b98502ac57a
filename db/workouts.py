"""Completed workouts and their sets: SQL beside typed functions that take a connection,
so the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

# A completed workout, its sets and the records it raised, in one statement: one
# round trip, atomic by itself, and nothing at all when the workout is already
# stored (a retry). Sets and records come as parallel arrays (unnest).
STORE_COMPLETED = """
WITH workout AS (
    INSERT INTO workouts (user_id, id, name, notes, room_id, started_at, completed_at, duration_s,
                          total_volume_kg, set_count, exercise_count, plan)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
    ON CONFLICT (user_id, id) DO NOTHING
    RETURNING user_id, id
), sets AS (
    INSERT INTO workout_sets (user_id, workout_id, id, position, exercise_id, set_type, weight_kg, reps,
                              duration_s, distance_m, rpe, notes, completed_at)
    SELECT workout.user_id, workout.id, s.*
    FROM workout, unnest($13::uuid[], $14::int[], $15::text[], $16::text[], $17::float8[], $18::int[],
                         $19::float8[], $20::float8[], $21::numeric[], $22::text[], $23::timestamptz[]) AS s
), records AS (
    INSERT INTO personal_records AS pr (user_id, exercise_id, type, weight_kg, value, workout_id, set_id, achieved_at)
    SELECT workout.user_id, r.exercise_id, r.type, r.weight_kg, r.value, workout.id, r.set_id, r.achieved_at
    FROM workout, unnest($24::text[], $25::text[], $26::float8[], $27::float8[], $28::uuid[],
                         $29::timestamptz[]) AS r(exercise_id, type, weight_kg, value, set_id, achieved_at)
    ON CONFLICT (user_id, exercise_id, type, weight_kg) DO UPDATE
    SET value = EXCLUDED.value, workout_id = EXCLUDED.workout_id, set_id = EXCLUDED.set_id,
        achieved_at = EXCLUDED.achieved_at
    WHERE pr.value < EXCLUDED.value
)
SELECT count(*) FROM workout
"""

SET_FIELDS = ("id", "position", "exercise_id", "set_type", "weight_kg", "reps", "duration_s", "distance_m", "rpe",
              "notes", "completed_at")
RECORD_FIELDS = ("exercise_id", "type", "weight_kg", "value", "set_id", "achieved_at")


async def store_completed(conn: asyncpg.Connection | asyncpg.Pool, workout: Sequence[Any],
                          sets: Sequence[Sequence[Any]], records: Sequence[Sequence[Any]]) -> bool:
    """Store a completed workout (SET_FIELDS rows, RECORD_FIELDS rows); False when it was stored before.

    A record only ever rises: a lower value never replaces a higher one."""
    set_columns = [list(c) for c in zip(*sets, strict=True)] if sets else [[] for _ in SET_FIELDS]
    record_columns = [list(c) for c in zip(*records, strict=True)] if records else [[] for _ in RECORD_FIELDS]
    return bool(await conn.fetchval(STORE_COMPLETED, *workout, *set_columns, *record_columns))


SELECT_PAGE = """
SELECT id, name, notes, room_id, started_at, completed_at, duration_s, total_volume_kg, set_count, exercise_count
FROM workouts
WHERE user_id = $1 AND ($2::timestamptz IS NULL OR (completed_at, id) < ($2, $3))
ORDER BY completed_at DESC, id DESC
LIMIT $4
"""

SELECT_ONE = """
SELECT id, name, notes, room_id, started_at, completed_at, duration_s, total_volume_kg, set_count, exercise_count,
       plan
FROM workouts
WHERE user_id = $1 AND id = $2
"""

SELECT_SETS = """
SELECT id, exercise_id, set_type, weight_kg, reps, duration_s, distance_m, rpe, notes, completed_at
FROM workout_sets
WHERE user_id = $1 AND workout_id = $2
ORDER BY position
"""

DELETE_ONE = """
DELETE FROM workouts WHERE user_id = $1 AND id = $2
RETURNING ARRAY(SELECT DISTINCT exercise_id FROM workout_sets WHERE user_id = $1 AND workout_id = $2)
"""


async def page(conn: asyncpg.Connection | asyncpg.Pool, user_id: str, after: tuple[datetime, UUID] | None,
               limit: int) -> list[asyncpg.Record]:
    """Completed workouts newest first, after the keyset (completed_at, id) when given."""
    at, wid = after if after else (None, None)
    return await conn.fetch(SELECT_PAGE, user_id, at, wid, limit)


async def one(conn: asyncpg.Connection | asyncpg.Pool, user_id: str, workout_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_ONE, user_id, workout_id)


async def sets_of(conn: asyncpg.Connection | asyncpg.Pool, user_id: str, workout_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(SELECT_SETS, user_id, workout_id)


async def delete(conn: asyncpg.Connection, user_id: str, workout_id: UUID) -> list[str] | None:
    """Delete a workout with its sets (and the records they held); the exercises it had, or None."""
    exercises = await conn.fetchval(DELETE_ONE, user_id, workout_id)
    return list(exercises) if exercises is not None else None
