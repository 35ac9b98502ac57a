"""GET /api/v1/rooms (mine) and /api/v1/rooms/{room_id} (members only: members and presence)."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from db import rooms as db_rooms
from realtime.core.errors import AppError
from realtime.core.protocol import PresenceEntry
from realtime.live.room_state import change_presence, room_of

from . import params
from .auth import user_id
from .schemas import RoomDetail, RoomList


async def list_rooms(request: Request) -> Response:
    uid = user_id(request)
    rows = await db_rooms.of_user(request.app.state.services.runtime.db, uid)
    return params.json_response(RoomList(data=[room_of(r) for r in rows]))


async def get_room(request: Request) -> Response:
    uid = user_id(request)
    room_id = params.path_uuid(request, "room_id")
    runtime = request.app.state.services.runtime
    row = await db_rooms.by_id(runtime.db, room_id)
    if row is None or not await db_rooms.is_member(runtime.db, room_id, uid):
        raise AppError("not_found", "no such room")
    presence = msgspec.json.decode(await change_presence(runtime, str(room_id), "purge"), type=list[PresenceEntry])
    members = await db_rooms.members(runtime.db, room_id)
    return params.json_response(RoomDetail(room=room_of(row), members=members, presence=presence))
