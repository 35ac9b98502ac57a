"""GET /api/v1/analytics/volume: training volume per day, week or month, in the user's time zone."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from db import history as db_history

from . import params
from .auth import user_id
from .schemas import Volume, VolumeBucket


async def volume(request: Request) -> Response:
    uid = user_id(request)
    tz = params.timezone(request)
    bucket = params.bucket(request)
    start, end = params.range_of(request, tz)
    rows = await db_history.volume(request.app.state.services.runtime.db, uid, bucket, start, end, tz)
    data = [VolumeBucket(start=r["start"], total_volume_kg=round(r["total_volume_kg"], 3), set_count=r["set_count"],
                         workout_count=r["workout_count"]) for r in rows]
    return params.json_response(Volume(bucket=bucket, tz=tz, data=data))
