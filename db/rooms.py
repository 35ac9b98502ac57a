"""Rooms and their members."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from .pool import Connection, Executor

INSERT_ROOM = """
WITH room AS (
    INSERT INTO rooms (id, name, owner_id, invite_code, max_members) VALUES ($1, $2, $3, $4, $5)
    RETURNING id, name, owner_id, invite_code, max_members
), owner AS (
    INSERT INTO room_members (room_id, user_id) SELECT id, owner_id FROM room
)
SELECT * FROM room
"""

SELECT_BY_ID = "SELECT id, name, owner_id, invite_code, max_members FROM rooms WHERE id = $1"
SELECT_BY_CODE = "SELECT id, name, owner_id, invite_code, max_members FROM rooms WHERE invite_code = $1"
IS_MEMBER = "SELECT EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2)"

# Joins only while there is room. The room row is locked first, in its own
# statement, so the count that follows sees every join that won the lock before.
LOCK_ROOM = "SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE"
JOIN = """
WITH room AS (SELECT id, max_members FROM rooms WHERE id = $1),
     members AS (SELECT count(*) AS n FROM room_members WHERE room_id = $1),
     already AS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2),
     added AS (
         INSERT INTO room_members (room_id, user_id)
         SELECT $1, $2 FROM room, members
         WHERE NOT EXISTS (SELECT 1 FROM already) AND members.n < room.max_members
         RETURNING 1
     )
SELECT EXISTS (SELECT 1 FROM already) AS was_member, EXISTS (SELECT 1 FROM added) AS added
"""

LEAVE = "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2 RETURNING 1"
ROTATE_CODE = "UPDATE rooms SET invite_code = $3 WHERE id = $1 AND owner_id = $2 RETURNING invite_code"
MEMBERS = "SELECT user_id FROM room_members WHERE room_id = $1 ORDER BY joined_at, user_id"
MY_ROOMS = """
SELECT r.id, r.name, r.owner_id, r.invite_code, r.max_members
FROM room_members m JOIN rooms r ON r.id = m.room_id
WHERE m.user_id = $1
ORDER BY m.joined_at DESC, r.id
"""


async def create(conn: Executor, room_id: UUID, name: str, owner_id: str, code: str,
                 max_members: int) -> asyncpg.Record:
    row = await conn.fetchrow(INSERT_ROOM, room_id, name, owner_id, code, max_members)
    assert row is not None  # INSERT ... RETURNING
    return row


async def by_id(conn: Executor, room_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_BY_ID, room_id)


async def by_code(conn: Executor, code: str) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_BY_CODE, code)


async def is_member(conn: Executor, room_id: UUID, user_id: str) -> bool:
    return bool(await conn.fetchval(IS_MEMBER, room_id, user_id))


async def join(conn: Connection, room_id: UUID, user_id: str) -> tuple[bool, bool]:
    """(was a member already, added now); neither means the room is full."""
    async with conn.transaction():
        await conn.execute(LOCK_ROOM, room_id)
        row = await conn.fetchrow(JOIN, room_id, user_id)
    assert row is not None  # the statement always answers one row
    return bool(row["was_member"]), bool(row["added"])


async def leave(conn: Executor, room_id: UUID, user_id: str) -> bool:
    return await conn.fetchval(LEAVE, room_id, user_id) is not None


async def rotate_code(conn: Executor, room_id: UUID, owner_id: str,
                      code: str) -> str | None:
    code_now: str | None = await conn.fetchval(ROTATE_CODE, room_id, owner_id, code)
    return code_now


async def members(conn: Executor, room_id: UUID) -> list[str]:
    return [r["user_id"] for r in await conn.fetch(MEMBERS, room_id)]


async def of_user(conn: Executor, user_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(MY_ROOMS, user_id)
