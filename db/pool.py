"""The asyncpg pool, configured once: sizes, timeouts and the JSON codecs."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

# What a query function takes: one connection (of its own, or acquired from the pool: the caller
# then owns the transaction), or the pool itself for a single statement.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Executor: TypeAlias = "asyncpg.Pool[asyncpg.Record] | Connection"


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, schema="pg_catalog", encoder=lambda v: msgspec.json.encode(v).decode(),
            decoder=msgspec.json.decode,
        )


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        # A request must fail fast when Postgres is away, not hang the ack.
        timeout=5,
        command_timeout=10,
        max_inactive_connection_lifetime=300,
        init=_init_connection,
    )
    assert pool is not None
    return pool
