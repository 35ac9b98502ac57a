"""GET /api/v1/exercises/{exercise_id}/records and …/history."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from db import history as db_history
from db import records as db_records

from . import params
from .auth import user_id
from .schemas import HistoryItem, HistoryPage, RecordItem, Records
from .workouts import ms, set_fields


async def records(request: Request) -> Response:
    uid = user_id(request)
    exercise = params.path_text(request, "exercise_id")
    rows = await db_records.standing(request.app.state.services.runtime.db, uid, exercise)
    items = [
        RecordItem(type=r["type"], value=r["value"], workout_id=str(r["workout_id"]), set_id=str(r["set_id"]),
                   achieved_at=ms(r["achieved_at"]), weight_kg=r["weight_kg"] if r["type"] == "max_reps" else None)
        for r in rows
    ]
    return params.json_response(Records(exercise_id=exercise, data=items))


async def history(request: Request) -> Response:
    uid = user_id(request)
    exercise = params.path_text(request, "exercise_id")
    limit = params.limit(request)
    rows = await db_history.exercise_page(request.app.state.services.runtime.db, uid, exercise,
                                          params.cursor(request, 2), limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    next_cursor = params.encode_cursor(last["completed_at"], last["workout_id"], last["id"]) if more and last else None
    data = [HistoryItem(**set_fields(r), workout_id=str(r["workout_id"])) for r in rows]
    return params.json_response(HistoryPage(data=data, next_cursor=next_cursor))
