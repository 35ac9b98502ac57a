"""Personal records: the user's standing bests per exercise."""

from __future__ import annotations

import asyncpg

SELECT_FOR_EXERCISE = """
SELECT type, weight_kg, value
FROM personal_records
WHERE user_id = $1 AND exercise_id = $2
"""


async def for_exercise(conn: asyncpg.Pool | asyncpg.Connection, user_id: str, exercise_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(SELECT_FOR_EXERCISE, user_id, exercise_id)
