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
