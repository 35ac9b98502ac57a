"""One exercise's sets over time, and volume per time bucket."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from .pool import Executor

SELECT_EXERCISE_PAGE = """
SELECT workout_id, id, exercise_id, set_type, weight_kg, reps, duration_s, distance_m, rpe, notes, completed_at
FROM workout_sets
WHERE user_id = $1 AND exercise_id = $2
  AND ($3::timestamptz IS NULL OR (completed_at, workout_id, id) < ($3, $4, $5))
ORDER BY completed_at DESC, workout_id DESC, id DESC
LIMIT $6
"""

# Buckets are computed in the user's time zone: a Monday-morning workout in
# Sydney belongs to Monday's bucket, not to Sunday's in UTC. A workout counts on
# the day it was completed, with the totals stored with it (warm-ups excluded).
SELECT_VOLUME = """
SELECT to_char(date_trunc($2, completed_at AT TIME ZONE $5), 'YYYY-MM-DD') AS start,
       sum(total_volume_kg) AS total_volume_kg,
       sum(set_count) AS set_count,
       count(*) AS workout_count
FROM workouts
WHERE user_id = $1 AND completed_at >= $3 AND completed_at < $4
GROUP BY 1
ORDER BY 1
"""


async def exercise_page(conn: Executor, user_id: str, exercise_id: str,
                        after: tuple[datetime, UUID, UUID] | None, limit: int) -> list[asyncpg.Record]:
    at, wid, sid = after if after else (None, None, None)
    return await conn.fetch(SELECT_EXERCISE_PAGE, user_id, exercise_id, at, wid, sid, limit)


async def volume(conn: Executor, user_id: str, bucket: str, start: datetime,
                 end: datetime, tz: str) -> list[asyncpg.Record]:
    return await conn.fetch(SELECT_VOLUME, user_id, bucket, start, end, tz)
