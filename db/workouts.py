"""Completed workouts and their sets: SQL beside typed functions that take a connection,
so the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

INSERT_WORKOUT = """
INSERT INTO workouts (user_id, id, name, notes, room_id, started_at, completed_at, duration_s,
                      total_volume_kg, set_count, exercise_count, plan)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (user_id, id) DO NOTHING
RETURNING true
"""

SET_COLUMNS = (
    "user_id", "workout_id", "id", "position", "exercise_id", "set_type", "weight_kg", "reps",
    "duration_s", "distance_m", "rpe", "notes", "completed_at",
)

UPSERT_RECORD = """
INSERT INTO personal_records (user_id, exercise_id, type, weight_kg, value, workout_id, set_id, achieved_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (user_id, exercise_id, type, weight_kg) DO UPDATE
SET value = EXCLUDED.value, workout_id = EXCLUDED.workout_id, set_id = EXCLUDED.set_id,
    achieved_at = EXCLUDED.achieved_at
WHERE personal_records.value < EXCLUDED.value
"""


async def insert_workout(conn: asyncpg.Connection, row: Sequence[Any]) -> bool:
    """Insert a completed workout; False when it is already stored."""
    return bool(await conn.fetchval(INSERT_WORKOUT, *row))


async def insert_sets(conn: asyncpg.Connection, rows: Sequence[Sequence[Any]]) -> None:
    await conn.copy_records_to_table("workout_sets", records=rows, columns=SET_COLUMNS)


async def raise_records(conn: asyncpg.Connection, rows: Sequence[tuple[str, str, str, float, float, UUID, UUID,
                                                                          datetime]]) -> None:
    """Store records that beat the standing ones (a lower value never replaces a higher)."""
    await conn.executemany(UPSERT_RECORD, rows)

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
