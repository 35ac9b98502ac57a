"""A small Socket.IO v5 client over one websocket, for load: many per process, little memory.

It speaks just what the protocol's core needs: the Engine.IO v4 handshake over
websocket (no polling), CONNECT with `auth`, events, acks, and answering pings.
python-socketio's client does all this too, with an aiohttp session and several
tasks per connection; a load generator needs thousands of connections per core.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

EventHandler = Callable[[str, Any, int], None]  # event, data, receipt time (ns)


class ConnectRefused(Exception):
    pass


class SocketIOClient:
    def __init__(self, url: str, auth: dict[str, Any], on_event: EventHandler, clock: Callable[[], int]) -> None:
        base = url.replace("http://", "ws://").replace("https://", "wss://").rstrip("/")
        self.url = f"{base}/socket.io/?EIO=4&transport=websocket"
        self.auth = auth
        self.on_event = on_event
        self.clock = clock
        self.ws: ClientConnection | None = None
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def connect(self, timeout: float = 10) -> None:
        self.ws = await asyncio.wait_for(connect(self.url, compression=None, max_size=2**22, open_timeout=timeout),
                                         timeout)
        opening = await asyncio.wait_for(self.ws.recv(), timeout)
        if not isinstance(opening, str) or not opening.startswith("0"):
            raise ConnectionError(f"unexpected Engine.IO open packet: {opening!r}")
        await self.ws.send("40" + json.dumps(self.auth, separators=(",", ":")))
        while True:
            packet = await asyncio.wait_for(self.ws.recv(), timeout)
            if isinstance(packet, str) and packet.startswith("40"):
                break
            if isinstance(packet, str) and packet.startswith("44"):
                raise ConnectRefused(packet[2:])
            if packet == "2":
                await self.ws.send("3")
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for packet in self.ws:
                now = self.clock()
                if not isinstance(packet, str):
                    continue
                if packet == "2":
                    await self.ws.send("3")
                elif packet.startswith("42"):
                    name, *args = json.loads(packet[2:])
                    self.on_event(name, args[0] if args else None, now)
                elif packet.startswith("43"):
                    body = packet[2:]
                    cut = body.index("[")
                    future = self._acks.pop(int(body[:cut]), None)
                    if future is not None and not future.done():
                        future.set_result(json.loads(body[cut:])[0])
                elif packet.startswith("41") or packet.startswith("1"):
                    break
        except Exception:  # noqa: BLE001  (any transport failure ends this connection)
            pass
        finally:
            for future in self._acks.values():
                if not future.done():
                    future.set_exception(ConnectionError("disconnected"))
            self._acks.clear()
            self.closed.set()

    async def call(self, event: str, payload: Any, timeout: float = 10) -> Any:
        assert self.ws is not None
        ack_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = future
        try:
            await self.ws.send(f"42{ack_id}" + json.dumps([event, payload], separators=(",", ":")))
        except ConnectionClosed as exc:
            self._acks.pop(ack_id, None)
            raise ConnectionError("disconnected") from exc
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._acks.pop(ack_id, None)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
