"""Completed workouts and their sets: SQL beside typed functions that take a connection,
so the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from .pool import Connection, Executor

# Completed workouts, their sets and the records they raised, in one statement:
# one round trip, atomic by itself, for a whole batch. A workout already stored
# (a retry) inserts nothing, and its sets and records are skipped with it: they
# join only the workouts this statement inserted. Rows come as parallel arrays;
# times as epoch milliseconds and ids as text, which costs the caller nothing to make.
# The plan comes as JSON text: a jsonb[] parameter would take a list of plan items as a
# second dimension of the array, not as one JSON value.
STORE_COMPLETED = """
WITH workout AS (
    INSERT INTO workouts (user_id, id, name, notes, room_id, started_at, completed_at, duration_s,
                          total_volume_kg, set_count, exercise_count, plan)
    SELECT user_id, id, name, notes, room_id, to_timestamp(started_at / 1000.0), to_timestamp(completed_at / 1000.0),
           duration_s, total_volume_kg, set_count, exercise_count, plan::jsonb
    FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::int8[], $7::int8[], $8::int[],
                $9::float8[], $10::int[], $11::int[], $12::text[])
         AS w(user_id, id, name, notes, room_id, started_at, completed_at, duration_s, total_volume_kg, set_count,
              exercise_count, plan)
    ON CONFLICT (user_id, id) DO NOTHING
    RETURNING user_id, id
), sets AS (
    INSERT INTO workout_sets (user_id, workout_id, id, position, exercise_id, set_type, weight_kg, reps,
                              duration_s, distance_m, rpe, notes, completed_at)
    SELECT s.user_id, s.workout_id, s.id, s.position, s.exercise_id, s.set_type, s.weight_kg, s.reps, s.duration_s,
           s.distance_m, s.rpe, s.notes, to_timestamp(s.completed_at / 1000.0)
    FROM unnest($13::text[], $14::uuid[], $15::uuid[], $16::int[], $17::text[], $18::text[], $19::float8[],
                $20::int[], $21::float8[], $22::float8[], $23::numeric[], $24::text[], $25::int8[])
         AS s(user_id, workout_id, id, position, exercise_id, set_type, weight_kg, reps, duration_s, distance_m,
              rpe, notes, completed_at)
    JOIN workout ON workout.user_id = s.user_id AND workout.id = s.workout_id
), records AS (
    INSERT INTO personal_records AS pr (user_id, exercise_id, type, weight_kg, value, workout_id, set_id, achieved_at)
    SELECT r.user_id, r.exercise_id, r.type, r.weight_kg, r.value, r.workout_id, r.set_id,
           to_timestamp(r.achieved_at / 1000.0)
    FROM unnest($26::text[], $27::text[], $28::text[], $29::float8[], $30::float8[], $31::uuid[], $32::uuid[],
                $33::int8[])
         AS r(user_id, exercise_id, type, weight_kg, value, workout_id, set_id, achieved_at)
    JOIN workout ON workout.user_id = r.user_id AND workout.id = r.workout_id
    ON CONFLICT (user_id, exercise_id, type, weight_kg) DO UPDATE
    SET value = EXCLUDED.value, workout_id = EXCLUDED.workout_id, set_id = EXCLUDED.set_id,
        achieved_at = EXCLUDED.achieved_at
    WHERE pr.value < EXCLUDED.value
)
SELECT count(*) FROM workout
"""

WORKOUT_FIELDS = ("user_id", "id", "name", "notes", "room_id", "started_at", "completed_at", "duration_s",
                  "total_volume_kg", "set_count", "exercise_count", "plan")
SET_FIELDS = ("user_id", "workout_id", "id", "position", "exercise_id", "set_type", "weight_kg", "reps",
              "duration_s", "distance_m", "rpe", "notes", "completed_at")
RECORD_FIELDS = ("user_id", "exercise_id", "type", "weight_kg", "value", "workout_id", "set_id", "achieved_at")


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


async def store_completed(conn: Executor, workouts: Sequence[Sequence[Any]],
                          sets: Sequence[Sequence[Any]], records: Sequence[Sequence[Any]]) -> int:
    """Store completed workouts (rows of WORKOUT_FIELDS, SET_FIELDS, RECORD_FIELDS; a plan as JSON
    text); how many were new.

    A record only ever rises: a lower value never replaces a higher one. One
    workout may appear only once per call."""
    return int(await conn.fetchval(
        STORE_COMPLETED, *_columns(workouts, len(WORKOUT_FIELDS)), *_columns(sets, len(SET_FIELDS)),
        *_columns(records, len(RECORD_FIELDS)),
    ))


SELECT_PAGE = """
SELECT id, name, notes, room_id, started_at, completed_at, duration_s, total_volume_kg, set_count, exercise_count
FROM workouts
WHERE user_id = $1 AND ($2::timestamptz IS NULL OR (completed_at, id) < ($2, $3))
ORDER BY completed_at DESC, id DESC
LIMIT $4
"""

SELECT_EXISTS = """
SELECT EXISTS (SELECT 1 FROM workouts WHERE user_id = $1 AND id = $2)
    OR EXISTS (SELECT 1 FROM deleted_workouts WHERE user_id = $1 AND id = $2)
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

INSERT_DELETED = "INSERT INTO deleted_workouts (user_id, id) VALUES ($1, $2) ON CONFLICT DO NOTHING"


async def page(conn: Executor, user_id: str, after: tuple[datetime, UUID] | None,
               limit: int) -> list[asyncpg.Record]:
    """Completed workouts newest first, after the keyset (completed_at, id) when given."""
    at, wid = after if after else (None, None)
    return await conn.fetch(SELECT_PAGE, user_id, at, wid, limit)


async def id_used(conn: Executor, user_id: str, workout_id: UUID) -> bool:
    """Whether this workout was ever completed (deleted since, or not): its id is used up."""
    return bool(await conn.fetchval(SELECT_EXISTS, user_id, workout_id))


async def one(conn: Executor, user_id: str, workout_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_ONE, user_id, workout_id)


async def sets_of(conn: Executor, user_id: str, workout_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(SELECT_SETS, user_id, workout_id)


async def delete(conn: Connection, user_id: str, workout_id: UUID) -> list[str] | None:
    """Delete a workout with its sets (and the records they held), keeping its id used up; the
    exercises it had, or None. The caller holds the transaction."""
    exercises = await conn.fetchval(DELETE_ONE, user_id, workout_id)
    if exercises is None:
        return None
    await conn.execute(INSERT_DELETED, user_id, workout_id)
    return list(exercises)
