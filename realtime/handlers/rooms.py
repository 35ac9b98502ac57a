"""Group workout rooms: membership in Postgres, presence and activity live in Redis.

A device is *present* in a room from its room:join until room:leave, its
disconnect, or its process's death. Presence is counted per user across
processes (lua/presence_change.lua), and every change is one room:presence
event on the room's channel. Leaving a room (or being removed) also publishes a
"kick" on that channel, which every process applies to the user's sockets in
channel order, so nothing published afterwards reaches them.
"""

from __future__ import annotations

import functools
import logging
import secrets
import uuid
from typing import Any, cast

import msgspec
from asyncpg import PostgresError
from redis.exceptions import RedisError

from db import rooms as db_rooms
from realtime.core import protocol as p
from realtime.core.errors import AppError
from realtime.live.fanout import KICK, group_room
from realtime.live.room_state import change_presence, room_of
from realtime.live.services import Services

from .namespace import Handler, Session

log = logging.getLogger("liveset.rooms")

INVITE_BYTES = 12  # 96 bits of randomness
GUESSES_PER_WINDOW = 10
GUESS_WINDOW_S = 600


def new_invite_code() -> str:
    return secrets.token_urlsafe(INVITE_BYTES)


class RoomHandlers:
    def __init__(self, services: Services, sessions: dict[str, Session]) -> None:
        self.services = services
        self.sessions = sessions

    def table(self) -> dict[str, Handler]:
        return {
            "room:create": self.create,
            "room:join": self.join,
            "room:leave": self.leave,
            "room:rotate_invite": self.rotate_invite,
            "room:remove": self.remove,
        }

    # ---- presence -----------------------------------------------------------

    async def presence_change(self, room_id: str, mode: str, target: str = "", value: str = "") -> bytes:
        return await change_presence(self.services.runtime, room_id, mode, target, value)

    def _entry(self, session: Session) -> str:
        return f"{self.services.runtime.devices.process}|{session.sid}"

    async def _enter(self, session: Session, room_id: str) -> bytes:
        runtime = self.services.runtime
        if room_id not in session.rooms:
            # First what the process's death must undo (purge_dead): should Redis fail here,
            # nothing is changed, and the client's retry does it all.
            await runtime.redis.sadd(runtime.live.keys.process_rooms(runtime.devices.process), room_id)
            session.rooms.add(room_id)
            await runtime.fanout.listen(runtime.live.keys.room_channel(room_id))
            await runtime.fanout.sockets.enter(session.sid, group_room(room_id))
        return await self.presence_change(room_id, "join", self._entry(session), session.user_id)

    async def forget(self, session: Session, room_id: str) -> None:
        """This socket is no longer in the room (it left, was removed, or disconnected)."""
        if room_id in session.rooms:
            session.rooms.discard(room_id)
            runtime = self.services.runtime
            runtime.fanout.sockets.leave(session.sid, group_room(room_id))
            await runtime.fanout.unlisten(runtime.live.keys.room_channel(room_id))

    async def disconnected(self, session: Session) -> None:
        for room_id in list(session.rooms):
            await self.forget(session, room_id)
            entry = self._entry(session)
            try:
                await self.presence_change(room_id, "leave", entry)
            except AppError:
                log.warning("presence not updated on disconnect; tried again after the next heartbeat",
                            extra={"room": room_id})
                self.services.runtime.devices.defer(functools.partial(self.presence_change, room_id, "leave", entry))

    async def on_kick(self, room_id: str, user_id: str) -> None:
        for session in list(self.sessions.values()):
            if session.user_id == user_id:
                await self.forget(session, room_id)

    async def purge_dead(self, processes: list[str]) -> None:
        """Devices of processes that stopped beating leave every room they were in."""
        runtime = self.services.runtime
        for process in processes:
            key = runtime.live.keys.process_rooms(process)
            for room_id in cast(set[bytes], await runtime.redis.smembers(key)):
                await self.presence_change(room_id.decode(), "purge")
            await runtime.redis.delete(key)

    async def _user_out(self, room_id: str, user_id: str) -> None:
        runtime = self.services.runtime
        await runtime.live.leave_room(user_id, room_id)
        await self.presence_change(room_id, "leave_user", user_id)
        await runtime.redis.publish(runtime.live.keys.room_channel(room_id), KICK + user_id.encode())

    async def set_workout(self, user_id: str, room_id: str, workout_id: str) -> None:
        """The user's workout in the room started ('' when it ended): presence carries it."""
        await self.presence_change(room_id, "workout", user_id, workout_id)

    # ---- events -------------------------------------------------------------

    async def _counted(self, session: Session) -> None:
        """A room:create, room:join or room:leave of the user, against a rate shared by every
        process (lua/rate_take.lua), as many as the user's connects: each changes the presence
        every member's devices hear, and 10 devices looping leave and join sent them ~94 each a
        second. A refused one changes nothing."""
        runtime, settings = self.services.runtime, self.services.settings
        try:
            wait = await runtime.live.take_rate(runtime.live.keys.room_rate(session.user_id),
                                                settings.connect_rate_per_s, settings.connect_burst)
        except RedisError as exc:
            raise AppError("unavailable", "live state is unreachable; retry") from exc
        if wait:
            raise AppError("rate_limited", f"more than {settings.connect_burst} room joins and leaves in a row, then "
                           f"{settings.connect_rate_per_s:g}/s; retry after {wait} ms", {"retry_after_ms": wait})

    async def create(self, session: Session, payload: p.RoomCreate) -> msgspec.Raw:
        await self._counted(session)
        db = self.services.runtime.db
        try:
            row = await db_rooms.create(db, uuid.uuid4(), payload.name, session.user_id, new_invite_code(),
                                        self.services.settings.max_room_members)
        except (PostgresError, OSError) as exc:
            raise AppError("unavailable", "rooms are unreachable; retry") from exc
        room = room_of(row)
        presence = await self._enter(session, room.room_id)
        return _joined(room, presence)

    async def join(self, session: Session, payload: p.RoomJoin) -> msgspec.Raw:
        if (payload.invite_code is None) == (payload.room_id is None):
            raise AppError("invalid_payload", "send invite_code or room_id", {"field": "invite_code"})
        await self._counted(session)
        runtime = self.services.runtime
        guesses_key = runtime.live.keys.invite_guesses(session.user_id)
        try:
            if payload.invite_code is not None:
                guesses = int(await runtime.redis.get(guesses_key) or 0)
                if guesses >= GUESSES_PER_WINDOW:
                    raise AppError("rate_limited", "too many wrong invite codes; try again later",
                                   {"retry_after_ms": GUESS_WINDOW_S * 1000})
                row = await db_rooms.by_code(runtime.db, payload.invite_code)
                if row is None:
                    async with runtime.redis.pipeline(transaction=True) as pipe:
                        pipe.incr(guesses_key)
                        pipe.expire(guesses_key, GUESS_WINDOW_S)
                        await pipe.execute()
                    raise AppError("not_found", "no room has this invite code")
                async with runtime.db.acquire() as conn:
                    was_member, added = await db_rooms.join(conn, row["id"], session.user_id)
                if not (was_member or added):
                    raise AppError("conflict", "the room is full", {"max_members": row["max_members"]})
            else:
                assert payload.room_id is not None  # one of the two, checked above
                row = await db_rooms.by_id(runtime.db, payload.room_id)
                if row is None or not await db_rooms.is_member(runtime.db, row["id"], session.user_id):
                    raise AppError("not_found", "no such room")
        except (PostgresError, OSError) as exc:
            raise AppError("unavailable", "rooms are unreachable; retry") from exc
        room = room_of(row)
        return _joined(room, await self._enter(session, room.room_id))

    async def leave(self, session: Session, payload: p.RoomRef) -> p.RoomLeft:
        await self._counted(session)
        room_id = str(payload.room_id)
        if not await db_rooms.leave(self.services.runtime.db, payload.room_id, session.user_id):
            raise AppError("not_found", "not a member of this room")
        await self._user_out(room_id, session.user_id)
        return p.RoomLeft(room_id=room_id)

    async def _owned(self, session: Session, room_id: uuid.UUID, action: str) -> Any:
        """The room, if the caller owns it: not_found for non-members, forbidden for members."""
        db = self.services.runtime.db
        row = await db_rooms.by_id(db, room_id)
        if row is None or not await db_rooms.is_member(db, room_id, session.user_id):
            raise AppError("not_found", "no such room")
        if row["owner_id"] != session.user_id:
            raise AppError("forbidden", f"only the room's owner can {action}")
        return row

    async def rotate_invite(self, session: Session, payload: p.RoomRef) -> p.InviteRotated:
        db = self.services.runtime.db
        row = await self._owned(session, payload.room_id, "change its invite code")
        code = await db_rooms.rotate_code(db, payload.room_id, session.user_id, new_invite_code())
        return p.InviteRotated(room=p.Room(room_id=str(row["id"]), name=row["name"], invite_code=code or "",
                                         owner_id=row["owner_id"]))

    async def remove(self, session: Session, payload: p.RoomRemove) -> p.RoomLeft:
        db = self.services.runtime.db
        await self._owned(session, payload.room_id, "remove members")
        if payload.user_id == session.user_id:
            raise AppError("invalid_payload", "the owner cannot remove themself", {"field": "user_id"})
        if not await db_rooms.leave(db, payload.room_id, payload.user_id):
            raise AppError("not_found", "not a member of this room")
        await self._user_out(str(payload.room_id), payload.user_id)
        return p.RoomLeft(room_id=str(payload.room_id))


def _joined(room: p.Room, presence: bytes) -> msgspec.Raw:
    return msgspec.Raw(b'{"room":' + msgspec.json.encode(room) + b',"presence":' + presence + b"}")
