"""A group room's state outside its Postgres rows: presence in Redis, the row as a protocol Room.

Both sides use it: the room handlers and REST's room detail (which reads presence
and purges dead processes' devices from it).
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError

from realtime.core import protocol as p
from realtime.core.errors import AppError

from .services import Runtime


async def change_presence(runtime: Runtime, room_id: str, mode: str, target: str = "", value: str = "") -> bytes:
    """Run lua/presence_change.lua; returns the presence after the change as JSON.

    Mode 'purge' changes nothing but dead processes' devices: it is also how the
    current presence is read."""
    keys = runtime.live.keys
    try:
        presence: bytes = await runtime.live.line.run(
            runtime.live.scripts["presence_change"], keys.room_presence(room_id),
            [room_id, keys.room_channel(room_id), mode, target, value, *runtime.devices.dead])
        return presence
    except RedisError as exc:
        raise AppError("unavailable", "live state is unreachable; retry") from exc


async def workout_ended(runtime: Runtime, user_id: str, room_id: str | None) -> None:
    """A workout started in a room ended: the user's presence there no longer names it."""
    if room_id is not None:
        await change_presence(runtime, room_id, "workout", user_id, "")


def room_of(row: Any) -> p.Room:
    return p.Room(room_id=str(row["id"]), name=row["name"], invite_code=row["invite_code"], owner_id=row["owner_id"])
