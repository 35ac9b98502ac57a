"""Which devices of a user are connected, across processes, and which processes are dead.

Each user has a hash in their shard, "<process>|<sid>" -> device_id. Every
process beats every HEARTBEAT_S (lua/heartbeat.lua); one that has not beaten
for PROCESS_TTL_S is moved to the dead set, which every process reads at its
beat. Entries of dead processes are dropped the next time they are counted (the
device limit, room presence), and rooms drop them at once (rooms.purge_dead).
Only processes found dead are dropped: a process that has just started, and
that a peer has not heard of yet, is never mistaken for a dead one.

A process found dead stays dead. One that was only frozen or cut off past
PROCESS_TTL_S learns it at its next beat: its peers have dropped its devices and
presence, so it goes on under a new id and ends every connection it holds
(`on_revived`); the clients reconnect, and each is counted again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from realtime.core.errors import AppError
from realtime.core.keys import Keys

from .live_state import now_ms
from .script_line import Function, ScriptLine

log = logging.getLogger("liveset.devices")

HEARTBEAT_S = 3.0
PROCESS_TTL_S = 9.0  # + one heartbeat to notice: a dead process's devices are gone within 12 s
REMEMBER_DEAD_S = 24 * 3600


class Devices:
    def __init__(self, line: ScriptLine, scripts: dict[str, Function], keys: Keys, limit: int,
                 connect_rate: tuple[float, int] = (2.0, 20),
                 on_dead: Callable[[list[str]], Awaitable[None]] | None = None,
                 on_revived: Callable[[], Awaitable[None]] | None = None) -> None:
        self.line = line  # a connect and a disconnect each cost one command on it
        self.on_dead = on_dead
        self.on_revived = on_revived
        self.keys = keys
        self.limit = limit
        self.connect_rate = connect_rate  # a user's connects: per second, back to back
        self.process = uuid.uuid4().hex[:12]
        self.dead: list[str] = []
        self._deferred: list[Callable[[], Awaitable[object]]] = []
        self._join = scripts["devices_join"]
        self._beat = scripts["heartbeat"]

    def _entry(self, sid: str) -> str:
        return f"{self.process}|{sid}"

    async def join(self, user_id: str, sid: str, device_id: str) -> list[str] | None:
        """Register the connection: the sids of the device's earlier connections, which it
        replaces and the caller ends; None when the user has `limit` other devices connected.
        AppError rate_limited when the user connects faster than `connect_rate`."""
        per_s, burst = self.connect_rate
        try:
            admitted, detail, *replaced = await self.line.run(
                self._join, [self.keys.connections(user_id), self.keys.connect_rate(user_id)],
                [self._entry(sid), device_id, self.limit, REMEMBER_DEAD_S, now_ms(), 1000 / per_s, burst, *self.dead],
            )
        except RedisError as exc:
            raise AppError("unavailable", "live state is unreachable; retry") from exc
        if admitted == -1:
            raise AppError("rate_limited", f"more than {burst} connects in a row, then {per_s:g}/s, for one user; "
                           f"retry after {detail} ms", {"retry_after_ms": detail})
        if not admitted:
            return None
        return [entry.decode().partition("|")[2] for entry in replaced]

    def entry(self, user_id: str, sid: str) -> tuple[str, str]:
        """Where the connection is registered: the user's hash and its entry (a newer
        connection of its device removes the entry)."""
        return self.keys.connections(user_id), self._entry(sid)

    async def leave(self, user_id: str, sid: str) -> None:
        key, entry = self.keys.connections(user_id), self._entry(sid)
        try:
            await self.line.call(b"HDEL", key, entry)
        except RedisError:
            log.warning("could not unregister a connection; tried again after the next heartbeat")
            self.defer(lambda: self.line.call(b"HDEL", key, entry))

    def defer(self, step: Callable[[], Awaitable[object]]) -> None:
        """A disconnect's cleanup that failed because Redis was unreachable (restarting, failing
        over): tried again after each heartbeat until it succeeds. Peers drop a dead process's
        entries, but never a live one's: left undone, a gone device would hold a place under
        the device limit and in room presence for as long as this process lives."""
        self._deferred.append(step)

    async def _retry_deferred(self) -> None:
        steps, self._deferred = self._deferred, []
        for step in steps:
            try:
                await step()
            except (RedisError, AppError):
                self._deferred.append(step)

    async def beat(self) -> list[str]:
        """Refresh this process's heartbeat; returns the processes found dead just now."""
        reply = await self._beat_once()
        if reply == ["dead"]:
            log.warning("this process was found dead by its peers (no heartbeat for %s s); it goes on as a new "
                        "process and its clients reconnect", PROCESS_TTL_S, extra={"process_id": self.process})
            self.process = uuid.uuid4().hex[:12]
            reply = await self._beat_once()
            if self.on_revived is not None:
                await self.on_revived()
        cut = reply.index("|")
        self.dead = reply[cut + 1:]
        return reply[:cut]

    async def _beat_once(self) -> list[str]:
        return [p.decode() for p in await self.line.run(
            self._beat, self.keys.processes(), [self.process, time.time(), PROCESS_TTL_S, REMEMBER_DEAD_S])]

    async def run(self) -> None:
        while True:
            try:
                dead = await self.beat()
                if dead and self.on_dead is not None:
                    log.info("processes stopped beating", extra={"processes": dead})
                    await self.on_dead(dead)
                await self._retry_deferred()
            except (RedisError, AppError) as exc:
                log.warning("heartbeat failed", extra={"error": str(exc)})
            await asyncio.sleep(HEARTBEAT_S)
