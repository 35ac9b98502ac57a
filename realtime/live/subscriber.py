"""The process's pub/sub connection: channels in, each message handed on the moment it is parsed.

redis-py's PubSub reads one message per `get_message` call, through its
parser, its push handler and an await per message — on the path of every
event every device receives. Here the connection's `data_received` parses
with hiredis and calls `on_message(channel, data)` at once, in publish order,
with no task or await in between (redis_connection.py, with `message`
pushes routed to the callback).

`subscribe` returns once Redis has confirmed the subscription, so what is
published after it returns is delivered. A lost connection is reopened by
`run` with backoff and every channel subscribed again; what was published
meanwhile is lost. Clients repair a `seq` gap with `workout:sync`, but a lost
event that is a workout's last shows no gap, so `on_restored` is called once
the channels are subscribed again (the server sends session:ready anew).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.exceptions import RedisError

from realtime.transport.redis_connection import Connection, PushHandler, command, connect, options_of

log = logging.getLogger("liveset.fanout")


class Subscriber:
    def __init__(self, url: str, on_message: PushHandler, timeout_s: float = 5.0,
                 on_restored: Callable[[], None] | None = None) -> None:
        self.options = options_of(url)
        self.on_message = on_message
        self.on_restored = on_restored
        self.timeout_s = timeout_s
        self.channels: set[str] = set()
        self._connection: Connection | None = None
        self._up = asyncio.Event()

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)
        await self._send(b"SUBSCRIBE", channel)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        await self._send(b"UNSUBSCRIBE", channel)

    async def _send(self, verb: bytes, channel: str) -> None:
        connection = self._connection
        if connection is None or connection.lost is not None:
            return  # `run` subscribes to what is in `channels` when it reconnects
        try:
            await connection.send(command(verb, channel))
        except RedisError:
            pass  # the connection is being lost; `run` takes over

    async def run(self) -> None:
        """Keep the connection open and subscribed, until cancelled."""
        backoff = 0.1
        lost = False
        try:
            while True:
                try:
                    connection = await connect(
                        self.options, lambda: Connection(self.timeout_s, self.on_message), 2.0)
                    self._connection = connection
                    await asyncio.gather(*(connection.send(command(b"SUBSCRIBE", c)) for c in self.channels))
                    self._up.set()
                    backoff = 0.1
                    if lost and self.on_restored is not None:
                        self.on_restored()
                    lost = True
                    await connection.ended
                    log.warning("pub/sub connection lost; reconnecting", extra={"error": str(connection.lost)})
                except RedisError as exc:
                    log.warning("pub/sub connection failed; retrying", extra={"error": str(exc)})
                self._up.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
        finally:
            if self._connection is not None and self._connection.transport is not None:
                self._connection.transport.close()

    async def ready(self) -> None:
        await self._up.wait()
