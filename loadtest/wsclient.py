"""A small Socket.IO v5 client over one websocket, for load: many per process, little CPU.

It speaks just what the protocol's core needs: the Engine.IO v4 handshake over
websocket (no polling), CONNECT with `auth`, events, acks, and answering pings.
It is an asyncio Protocol that handles each frame where it arrives: no task per
connection and none per message. The websockets library's client costs a task
switch, a queue and a keepalive task per connection; measured under the same
load, the generator then spent more CPU per set than the server it measured
and capped the rate it could offer (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import struct
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import msgspec
from websockets.frames import Frame, Opcode
from websockets.utils import accept_key

EventHandler = Callable[[str, Any, int], None]  # event, data, receipt time (ns)

# The websockets library's framing, not liveset's own (realtime/transport/ws_frames.py): a framing bug the
# server had would otherwise be one the load generator shares, and no run could show it.
TEXT, PING, PONG, CLOSE = Opcode.TEXT, Opcode.PING, Opcode.PONG, Opcode.CLOSE
_SHORT = struct.Struct("!H")
_LONG = struct.Struct("!Q")
# msgspec rather than json: at 3,000 sets/s the generator decodes 24,000 events a second
# on the core Valkey shares, and json.loads was a sixth of its CPU.
_decode = msgspec.json.decode
_encode = msgspec.json.encode


class ConnectRefused(Exception):
    pass


def _masked(opcode: Opcode, payload: bytes) -> bytes:
    """A client's frame: always masked (RFC 6455 5.3)."""
    return Frame(opcode, payload).serialize(mask=True)


def _time_out(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError("no ack in time"))


class SocketIOClient(asyncio.Protocol):
    def __init__(self, url: str, auth: dict[str, Any], on_event: EventHandler, clock: Callable[[], int]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.auth = auth
        self.on_event = on_event
        self.clock = clock
        self.transport: asyncio.Transport | None = None
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._buffer = b""
        self._key = base64.b64encode(os.urandom(16))
        self._upgraded = False
        self._opened: asyncio.Future[None] | None = None  # until Socket.IO CONNECT is answered
        self.closed = asyncio.Event()

    async def connect(self, timeout: float = 10) -> None:
        loop = asyncio.get_running_loop()
        self._opened = loop.create_future()
        try:
            await asyncio.wait_for(self._connect(loop), timeout)
        except BaseException:
            self.abort()
            raise

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._opened is not None
        await loop.create_connection(lambda: self, self.host, self.port)
        assert self.transport is not None
        self.transport.write(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (self.host.encode(), self.port, self._key))
        await self._opened

    def abort(self) -> None:
        """Drop the connection without a close handshake, as a phone in a tunnel does."""
        if self.transport is not None:
            self.transport.abort()

    # ---- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  (uvloop's is no asyncio.Transport subclass)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError("disconnected"))

    def data_received(self, data: bytes) -> None:
        data = self._buffer + data if self._buffer else data
        try:
            at = 0 if self._upgraded else self._upgrade(data)
            if at < 0:
                self._buffer = data
                return
            at = self._frames(data, at)
        except Exception as exc:  # noqa: BLE001  (a refusal, a bad frame, a handler's fault: this connection ends)
            self._fail(exc)
            self.abort()
            return
        self._buffer = data[at:]

    def _upgrade(self, data: bytes) -> int:
        """The HTTP answer to the upgrade: where the frames start, or -1 until it is whole."""
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return -1
        head = data[:end].lower()
        accept = accept_key(self._key.decode()).encode().lower()
        if not head.startswith(b"http/1.1 101") or b"sec-websocket-accept: " + accept not in head:
            raise ConnectionError(f"websocket upgrade refused: {data[:end].decode('latin-1')[:200]}")
        self._upgraded = True
        return end + 4

    def _frames(self, data: bytes, at: int) -> int:
        """Handle every whole frame from `at` on (a server's frames are unmasked and, from
        this server and the peer, never fragmented); returns where the unread bytes begin."""
        end = len(data)
        while end - at >= 2:
            opcode, length, head = data[at] & 0x0F, data[at + 1] & 0x7F, at + 2
            if length == 126:
                if end - head < 2:
                    break
                length, head = _SHORT.unpack_from(data, head)[0], head + 2
            elif length == 127:
                if end - head < 8:
                    break
                length, head = _LONG.unpack_from(data, head)[0], head + 8
            if end - head < length:
                break
            at = head + length
            if opcode == TEXT:
                self._packet(data[head:at])
            elif opcode == PING:
                self._send(PONG, data[head:at])
            elif opcode == CLOSE:
                raise ConnectionError("closed by the server")
        return at

    def _packet(self, packet: bytes) -> None:
        now = self.clock()
        kind = packet[:2]
        if kind == b"42":
            name, *args = _decode(packet[2:])
            self.on_event(name, args[0] if args else None, now)
        elif kind == b"43":
            cut = packet.index(b"[")
            future = self._acks.pop(int(packet[2:cut]), None)
            if future is not None and not future.done():
                future.set_result(_decode(packet[cut:])[0])
        elif packet == b"2":
            self._send(TEXT, b"3")
        elif kind == b"40":
            if self._opened is not None and not self._opened.done():
                self._opened.set_result(None)
        elif packet[:1] == b"0":  # Engine.IO open: now the Socket.IO CONNECT with auth
            self._send(TEXT, b"40" + _encode(self.auth))
        elif kind == b"44":
            raise ConnectRefused(packet[2:].decode(errors="replace"))
        elif kind == b"41" or packet[:1] == b"1":
            raise ConnectionError("closed by the server")

    def _send(self, opcode: Opcode, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("disconnected")
        self.transport.write(_masked(opcode, payload))

    def _fail(self, exc: Exception) -> None:
        if self._opened is not None and not self._opened.done():
            self._opened.set_exception(exc)
        for future in self._acks.values():
            if not future.done():
                future.set_exception(ConnectionError("disconnected"))
        self._acks.clear()
        self.closed.set()

    # ---- calls ----------------------------------------------------------------------

    async def call(self, event: str, payload: Any, timeout: float = 10) -> Any:
        """Send an event and return its ack; TimeoutError after `timeout` s. A timer handle
        rather than asyncio.wait_for, which wraps every call in more futures and callbacks."""
        ack_id = next(self._ids)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._acks[ack_id] = future
        timer = loop.call_later(timeout, _time_out, future)
        try:
            self._send(TEXT, b"42%d%s" % (ack_id, _encode([event, payload])))
            return await future
        finally:
            timer.cancel()
            self._acks.pop(ack_id, None)

    async def close(self) -> None:
        if self.transport is None:
            return
        if not self.transport.is_closing():
            self.transport.write(_masked(CLOSE, _SHORT.pack(1000)))
            self.transport.close()
        await self.closed.wait()
