"""GET/DELETE /api/v1/workouts…: completed workouts from Postgres, the live one from Redis."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response

from db import records as db_records
from db import workouts as db_workouts
from realtime.core.errors import AppError
from realtime.core.records import baseline_json
from realtime.live.services import Services

from . import params
from .auth import user_id
from .schemas import SetItem, WorkoutDetail, WorkoutItem, WorkoutPage

log = logging.getLogger("liveset.rest")


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _item_fields(row: Any) -> dict[str, Any]:
    return {
        "workout_id": str(row["id"]), "name": row["name"], "notes": row["notes"],
        "room_id": str(row["room_id"]) if row["room_id"] else None, "started_at": ms(row["started_at"]),
        "completed_at": ms(row["completed_at"]), "duration_s": row["duration_s"],
        "total_volume_kg": row["total_volume_kg"], "set_count": row["set_count"],
        "exercise_count": row["exercise_count"],
    }


def set_fields(row: Any) -> dict[str, Any]:
    return {
        "set_id": str(row["id"]), "exercise_id": row["exercise_id"], "set_type": row["set_type"],
        "weight_kg": row["weight_kg"], "reps": row["reps"], "duration_s": row["duration_s"],
        "distance_m": row["distance_m"], "rpe": float(row["rpe"]) if row["rpe"] is not None else None,
        "notes": row["notes"], "completed_at": ms(row["completed_at"]),
    }


async def list_workouts(request: Request) -> Response:
    uid = user_id(request)
    services: Services = request.app.state.services
    limit = params.limit(request)
    rows = await db_workouts.page(services.runtime.db, uid, params.cursor(request, 1), limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = params.encode_cursor(rows[-1]["completed_at"], rows[-1]["id"]) if more else None
    return params.json_response(WorkoutPage(data=[WorkoutItem(**_item_fields(r)) for r in rows],
                                            next_cursor=next_cursor))


async def get_workout(request: Request) -> Response:
    uid = user_id(request)
    wid = params.path_uuid(request, "workout_id")
    db = request.app.state.services.runtime.db
    row = await db_workouts.one(db, uid, wid)
    if row is None:
        raise AppError("not_found", "no such workout")
    sets = await db_workouts.sets_of(db, uid, wid)
    return params.json_response(WorkoutDetail(**_item_fields(row), plan=row["plan"],
                                              sets=[SetItem(**set_fields(s)) for s in sets]))


async def delete_workout(request: Request) -> Response:
    """Delete a completed workout and re-derive the records it had set from what remains."""
    uid = user_id(request)
    wid: UUID = params.path_uuid(request, "workout_id")
    runtime = request.app.state.services.runtime
    async with runtime.db.acquire() as conn, conn.transaction():
        exercises = await db_workouts.delete(conn, uid, wid)
        if exercises is None:
            raise AppError("not_found", "no such workout")
        await db_records.rederive(conn, uid, exercises)
        standing = await db_records.for_exercises(conn, uid, exercises)
    baselines = {exercise: baseline_json(rows) for exercise, rows in standing.items()}
    try:
        await runtime.live.rebase(uid, baselines)
    except AppError:
        # The delete is committed; failing it now would only make a retry see 404.
        log.warning("a live workout kept its records from before a delete", extra={"user_id": uid})
    return Response(status_code=204)


async def active_workout(request: Request) -> Response:
    uid = user_id(request)
    snapshot = await request.app.state.services.runtime.live.active_snapshot(uid)
    if snapshot is None:
        raise AppError("not_found", "no live workout")
    return Response(bytes(snapshot), media_type="application/json")
