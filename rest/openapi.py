"""/openapi.json, generated from the response Structs (msgspec makes their JSON Schema)."""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from realtime.core.protocol import WorkoutSnapshot

from .params import BUCKETS, DEFAULT_LIMIT, MAX_LIMIT
from .problems import Problem
from .schemas import HistoryPage, Records, RoomDetail, RoomList, Volume, WorkoutDetail, WorkoutPage

_REF = "#/components/schemas/{name}"


def _param(name: str, where: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema,
            "description": description}


LIMIT = _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
               "items per page")
CURSOR = _param("cursor", "query", {"type": "string"}, "next_cursor of the previous page")
WORKOUT_ID = _param("workout_id", "path", {"type": "string", "format": "uuid"}, "the workout")
EXERCISE_ID = _param("exercise_id", "path", {"type": "string", "minLength": 1, "maxLength": 64}, "the exercise")


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": _REF.format(name=name)}}}}


def _problems(*statuses: int) -> dict[str, Any]:
    problem = {"content": {"application/problem+json": {"schema": {"$ref": _REF.format(name="Problem")}}}}
    return {str(s): {"description": "a problem document (RFC 9457)", **problem} for s in statuses}


def _op(summary: str, parameters: list[dict[str, Any]], ok: dict[str, Any], *errors: int) -> dict[str, Any]:
    return {"summary": summary, "parameters": parameters, "security": [{"bearer": []}],
            "responses": {**ok, **_problems(400, 401, *errors)}}


@cache
def document() -> bytes:
    _, components = msgspec.json.schema_components(
        [WorkoutPage, WorkoutDetail, WorkoutSnapshot, Records, HistoryPage, Volume, RoomList, RoomDetail, Problem],
        ref_template=_REF
    )
    paths = {
        "/api/v1/workouts": {"get": _op("Completed workouts, newest first", [LIMIT, CURSOR],
                                        {"200": _json("WorkoutPage", "a page of workouts")})},
        "/api/v1/workouts/active": {"get": _op("The live workout's snapshot", [],
                                               {"200": _json("WorkoutSnapshot", "the live workout")}, 404)},
        "/api/v1/workouts/{workout_id}": {
            "get": _op("One completed workout with its sets", [WORKOUT_ID],
                       {"200": _json("WorkoutDetail", "the workout")}, 404),
            "delete": _op("Delete a completed workout; the records it set are derived again; its id stays used up",
                          [WORKOUT_ID],
                          {"204": {"description": "deleted"}}, 404),
        },
        "/api/v1/exercises/{exercise_id}/records": {"get": _op(
            "The user's current records for an exercise", [EXERCISE_ID], {"200": _json("Records", "the records")})},
        "/api/v1/exercises/{exercise_id}/history": {"get": _op(
            "The exercise's sets, newest first", [EXERCISE_ID, LIMIT, CURSOR],
            {"200": _json("HistoryPage", "a page of sets")})},
        "/api/v1/analytics/volume": {"get": _op("Training volume per bucket", [
            _param("from", "query", {"type": "string"},
                   "a date (YYYY-MM-DD) or ISO 8601 date-time; default: to - 30 days"),
            _param("to", "query", {"type": "string"}, "a date (inclusive) or date-time (exclusive); default: now"),
            _param("bucket", "query", {"type": "string", "enum": list(BUCKETS), "default": "day"}, "bucket size"),
            _param("tz", "query", {"type": "string", "default": "UTC"}, "IANA time zone of the buckets"),
        ], {"200": _json("Volume", "volume per bucket")})},
        "/api/v1/rooms": {"get": _op("The rooms I am a member of", [], {"200": _json("RoomList", "my rooms")})},
        "/api/v1/rooms/{room_id}": {"get": _op(
            "A room's members and who is present now (members only)",
            [_param("room_id", "path", {"type": "string", "format": "uuid"}, "the room")],
            {"200": _json("RoomDetail", "the room")}, 404)},
    }
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "liveset REST API", "version": "1"},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }
    return msgspec.json.encode(spec)


async def openapi(request: Request) -> Response:
    return Response(document(), media_type="application/json")
