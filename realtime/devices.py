"""Which devices of a user are connected, across processes: the devices-per-user limit.

Each user has a hash in their shard, "<process>|<sid>" -> device_id. A process
is alive while it keeps its entry in the `procs` sorted set fresh (a heartbeat
every HEARTBEAT_S); entries of a process that stopped beating are dropped the
next time the user's devices are counted, so a killed process cannot keep a
user's devices "connected" for longer than PROCESS_TTL_S.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .errors import AppError
from .keys import Keys

log = logging.getLogger("liveset.devices")

HEARTBEAT_S = 5.0
PROCESS_TTL_S = 15.0
_JOIN = (Path(__file__).parent / "lua" / "devices_join.lua").read_text()


class Devices:
    def __init__(self, redis: Redis, keys: Keys, limit: int) -> None:
        self.redis = redis
        self.keys = keys
        self.limit = limit
        self.process = uuid.uuid4().hex[:12]
        self.alive: list[str] = [self.process]
        self._join = redis.register_script(_JOIN)

    def _entry(self, sid: str) -> str:
        return f"{self.process}|{sid}"

    async def join(self, user_id: str, sid: str, device_id: str) -> bool:
        """Register the connection; False when the user has `limit` other devices connected."""
        try:
            admitted, _ = await self._join(
                keys=[self.keys.connections(user_id)],
                args=[self._entry(sid), device_id, self.limit, *self.alive],
            )
        except RedisError as exc:
            raise AppError("unavailable", "live state is unreachable; retry") from exc
        return bool(admitted)

    async def leave(self, user_id: str, sid: str) -> None:
        try:
            await self.redis.hdel(self.keys.connections(user_id), self._entry(sid))
        except RedisError:
            log.warning("could not unregister a connection; it expires with this process's heartbeat")

    async def beat(self) -> None:
        now = time.time()
        procs = self.keys.processes()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(procs, {self.process: now})
            pipe.zremrangebyscore(procs, "-inf", now - PROCESS_TTL_S)
            pipe.zrange(procs, 0, -1)
            *_, alive = await pipe.execute()
        self.alive = [p.decode() for p in alive]

    async def run(self) -> None:
        while True:
            try:
                await self.beat()
            except RedisError as exc:
                log.warning("heartbeat failed", extra={"error": str(exc)})
            await asyncio.sleep(HEARTBEAT_S)
