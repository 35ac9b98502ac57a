"""GET /api/v1/rooms (mine) and /api/v1/rooms/{room_id} (members only: members and presence)."""

from __future__ import annotations

from collections import Counter

from starlette.requests import Request
from starlette.responses import Response

from db import rooms as db_rooms
from realtime.errors import AppError
from realtime.protocol import PresenceEntry, Room

from . import params
from .auth import user_id
from .schemas import RoomDetail, RoomList


def _room(row) -> Room:  # type: ignore[no-untyped-def]
    return Room(room_id=str(row["id"]), name=row["name"], invite_code=row["invite_code"], owner_id=row["owner_id"])


async def list_rooms(request: Request) -> Response:
    uid = user_id(request)
    rows = await db_rooms.of_user(request.app.state.services.runtime.db, uid)
    return params.json_response(RoomList(data=[_room(r) for r in rows]))


async def get_room(request: Request) -> Response:
    uid = user_id(request)
    room_id = params.path_uuid(request, "room_id")
    runtime = request.app.state.services.runtime
    row = await db_rooms.by_id(runtime.db, room_id)
    if row is None or not await db_rooms.is_member(runtime.db, room_id, uid):
        raise AppError("not_found", "no such room")
    presence_key, workouts_key = runtime.live.keys.room_presence(str(room_id))
    entries = await runtime.redis.hgetall(presence_key)
    workouts = await runtime.redis.hgetall(workouts_key)
    dead = set(runtime.devices.dead)
    counts = Counter(user.decode() for entry, user in entries.items() if entry.decode().split("|")[0] not in dead)
    presence = [PresenceEntry(user_id=u, device_count=n, workout_id=(workouts.get(u.encode()) or b"").decode() or None)
                for u, n in counts.items()]
    members = await db_rooms.members(runtime.db, room_id)
    return params.json_response(RoomDetail(room=_room(row), members=members, presence=presence))
