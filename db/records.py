"""Personal records: the user's standing bests per exercise."""

from __future__ import annotations

import asyncpg

from .pool import Connection, Executor

SELECT_FOR_EXERCISES = """
SELECT exercise_id, type, weight_kg, value
FROM personal_records
WHERE user_id = $1 AND exercise_id = any($2::text[])
"""


async def for_exercises(conn: Executor, user_id: str,
                        exercise_ids: list[str]) -> dict[str, list[asyncpg.Record]]:
    """The user's standing records for each of the exercises, in one query (none: an empty list)."""
    found: dict[str, list[asyncpg.Record]] = {e: [] for e in exercise_ids}
    for row in await conn.fetch(SELECT_FOR_EXERCISES, user_id, exercise_ids):
        found[row["exercise_id"]].append(row)
    return found

SELECT_STANDING = """
SELECT type, weight_kg, value, workout_id, set_id, achieved_at
FROM personal_records
WHERE user_id = $1 AND exercise_id = $2
ORDER BY type, weight_kg
"""

DELETE_FOR_EXERCISES = "DELETE FROM personal_records WHERE user_id = $1 AND exercise_id = any($2::text[])"

# The records the remaining sets hold, by the rules in realtime/core/records.py: the
# best value wins, and on a tie the earliest set (a tie is not a record).
DERIVE_FOR_EXERCISES = """
WITH counted AS (
    SELECT user_id, exercise_id, workout_id, id, completed_at, reps, coalesce(weight_kg, 0) AS weight
    FROM workout_sets
    WHERE user_id = $1 AND exercise_id = any($2::text[]) AND set_type <> 'warmup' AND reps >= 1
)
INSERT INTO personal_records (user_id, exercise_id, type, weight_kg, value, workout_id, set_id, achieved_at)
SELECT user_id, exercise_id, type, weight_key, value, workout_id, id, completed_at FROM (
    (SELECT DISTINCT ON (exercise_id) *, 'max_weight' AS type, 0::float8 AS weight_key, weight AS value
     FROM counted WHERE weight > 0 ORDER BY exercise_id, weight DESC, completed_at, id)
    UNION ALL
    (SELECT DISTINCT ON (exercise_id) *, 'est_1rm', 0::float8,
            round((weight * (1 + reps / 30.0))::numeric, 2)::float8 AS value
     FROM counted WHERE weight > 0 ORDER BY exercise_id, weight * (1 + reps / 30.0) DESC, completed_at, id)
    UNION ALL
    (SELECT DISTINCT ON (exercise_id) *, 'max_volume', 0::float8, round((weight * reps)::numeric, 3)::float8 AS value
     FROM counted WHERE weight > 0 ORDER BY exercise_id, weight * reps DESC, completed_at, id)
    UNION ALL
    (SELECT DISTINCT ON (exercise_id, weight) *, 'max_reps', weight, reps::float8 AS value
     FROM counted ORDER BY exercise_id, weight, reps DESC, completed_at, id)
) best
"""


async def standing(conn: Executor, user_id: str, exercise_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(SELECT_STANDING, user_id, exercise_id)


async def rederive(conn: Connection, user_id: str, exercises: list[str]) -> None:
    """Records of these exercises from the sets stored now (after a workout was deleted)."""
    await conn.execute(DELETE_FOR_EXERCISES, user_id, exercises)
    await conn.execute(DERIVE_FOR_EXERCISES, user_id, exercises)
