"""One pipelined Redis connection for the Lua scripts on the hot path.

Every set runs two or three scripts, so the process's scripts share one
connection (redis_connection.py), as node-redis does: the calls made in one
loop turn leave in one write.

A lost connection fails every waiting call (the caller answers `unavailable`;
its client retries with the same ids, which the scripts dedupe) and the next
call connects again. A reply slower than `timeout_s` drops the connection the
same way, so an outage never hangs an ack.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ResponseError

from realtime.transport.redis_connection import Arg, Connection, command, connect, options_of


class Function:
    """A function of a function library (Redis 7 or Valkey) (`source`, with a `#!lua name=` line),
    called with FCALL and the library loaded when the server does not know it. The
    names carry a hash of the library, so that two versions of it can run side by side."""

    __slots__ = ("source", "name")

    def __init__(self, source: bytes, name: bytes) -> None:
        self.source = source
        self.name = name

    def invoke(self, keys: Sequence[Arg], args: Sequence[Arg]) -> list[Arg]:
        return [b"FCALL", self.name, len(keys), *keys, *args]

    def load(self) -> list[Arg]:
        # REPLACE: another process may have loaded the same library meanwhile.
        return [b"FUNCTION", b"LOAD", b"REPLACE", self.source]

    @staticmethod
    def missing(error: BaseException) -> bool:
        return isinstance(error, ResponseError) and str(error).endswith("Function not found")


class ScriptLine:
    def __init__(self, url: str, timeout_s: float = 5.0, connect_timeout_s: float = 2.0) -> None:
        self.options = options_of(url)
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._connection: Connection | None = None
        self._connecting: asyncio.Lock | None = None
        self._loading: dict[bytes, asyncio.Future[Any]] = {}  # script source -> its load in flight

    async def call(self, *args: Arg) -> Any:
        return await (await self._live()).send(command(*args))

    async def run(self, script: Function, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        try:
            return await self.call(*script.invoke(keys, args))
        except ResponseError as exc:
            if not script.missing(exc):
                raise
        await self._load(script)
        return await self.call(*script.invoke(keys, args))

    async def _load(self, script: Function) -> None:
        """Load a script unknown to this server (new, restarted, or flushed) once, however
        many calls found it missing: a cold server meets every call in flight at once."""
        loading = self._loading.get(script.source)
        if loading is None:
            loading = self._loading[script.source] = asyncio.ensure_future(self.call(*script.load()))
            loading.add_done_callback(lambda _: self._loading.pop(script.source, None))
        await asyncio.shield(loading)

    async def run_all(self, script: Function,
                      calls: Sequence[tuple[Sequence[Arg], Sequence[Arg]]]) -> list[Any]:
        """Several calls of one script, written in one go; replies in the same order."""
        connection = await self._live()
        futures = [connection.send(command(*script.invoke(keys, args))) for keys, args in calls]
        # Every reply is awaited, so that no failed one is left unretrieved.
        replies = await asyncio.gather(*futures, return_exceptions=True)
        failed = [r for r in replies if isinstance(r, BaseException)]
        if not failed:
            return replies
        if all(script.missing(r) for r in failed):
            # Only the calls that did not run run again (`run` loads the script).
            return [await self.run(script, *calls[i]) if isinstance(reply, BaseException) else reply
                    for i, reply in enumerate(replies)]
        raise failed[0]

    async def _live(self) -> Connection:
        """The open connection, or a new one when there is none (one connect at a time)."""
        if self._connection is not None and self._connection.lost is None:
            return self._connection
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._connection is None or self._connection.lost is not None:
                self._connection = await connect(
                    self.options, lambda: Connection(self.timeout_s), self.connect_timeout_s)
            return self._connection

    async def aclose(self) -> None:
        if self._connection is not None and self._connection.transport is not None:
            self._connection.transport.close()
        self._connection = None
