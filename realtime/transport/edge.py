"""liveset's websocket edge: Engine.IO over a websocket, one small protocol object per connection.

A client that opens `/socket.io/?EIO=4&transport=websocket` (every app, and
socket.io-client with `transports: ["websocket"]`) is served here instead of by
uvicorn's websocket protocol and python-engineio's ASGI socket. Those layers
cost each connection four tasks, three queues and two copies of the request
(docs/performance.md: 44 KB per idle connection; a task, a `wait_for` and a
queue hop per frame each way). Here a connection is one `EdgeSocket`: frames
are parsed in `data_received`, each Socket.IO message runs in one task,
the frames a connection gets in one loop turn go to its transport in one
write, and the heartbeat is one timer handle. Plain events go to the
namespace's dispatch and their acks straight back (socketio_server.py: Server.message);
python-socketio does the rest of Socket.IO — handshake auth, namespaces,
emits, rooms — because an `EdgeSocket` stands in python-engineio's socket
table as one of its own sockets would.

HTTP long-polling, and the upgrade from it to a websocket, stay with
python-engineio: a request the edge does not take is left to the ASGI app.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any
from urllib.parse import parse_qs

from engineio import packet as eio_packet

from .socketio_server import Server
from .ws_frames import (
    BINARY,
    CLOSE,
    GOING_AWAY,
    INVALID_DATA,
    NORMAL,
    PING,
    PONG,
    RESTARTING,
    TEXT,
    FrameReader,
    ProtocolError,
    accept_key,
    close_frame,
    frame,
    valid_key,
)

log = logging.getLogger("liveset.edge")

STATE_KEY = "liveset.edge"  # where the lifespan state hands the edge to the HTTP protocol
PATH = b"/socket.io/"
# Socket.IO messages one connection may have in flight before its reads pause.
MAX_IN_FLIGHT = 64
CLOSE_TIMEOUT_S = 2.0  # how long our close frame waits for the client's before the TCP connection ends


class Edge:
    """Which upgrades are ours, and what every EdgeSocket shares."""

    def __init__(self, sio: Server) -> None:
        self.eio = sio.eio
        self.handlers = sio.eio.handlers  # python-engineio's connect / message / disconnect events
        # Each Socket.IO message; returns the Engine.IO payload of an ack to write, if it has not sent one.
        self.on_message = sio.message
        self.reason = sio.eio.reason
        self.ping_interval = float(sio.eio.ping_interval)
        self.ping_timeout = float(sio.eio.ping_timeout)
        self.max_size = int(sio.eio.max_http_buffer_size)
        allowed = sio.eio.cors_allowed_origins
        allowed = [allowed] if isinstance(allowed, str) else list(allowed or [])
        # python-engineio's rule: no list means no check, and "*" allows every origin.
        self.origins = None if not allowed or "*" in allowed else set(allowed)
        self.held: list[EdgeSocket] = []  # sockets with frames written since the last flush

    def hold(self, sock: EdgeSocket) -> None:
        """`sock` has frames to send: they go out in the next loop turn, with whatever else is
        written to it until then, in one system call. Redis's reply to a script and the event
        the script published usually arrive in one turn, the reply first, so the ack, written
        when the handler's task wakes in the next turn, joins the event: the device that sent
        a request reads both at once (docs/architecture.md: 7.1 -> 5.1 writes per set)."""
        if not self.held:
            asyncio.get_running_loop().call_soon(self._flush)
        self.held.append(sock)

    def _flush(self) -> None:
        held, self.held = self.held, []
        for sock in held:
            sock.flush()

    def takes(self, url: bytes, headers: dict[bytes, bytes]) -> bool:
        """A fresh Engine.IO v4 websocket with a well-formed handshake; anything else goes to the app."""
        path, _, query_string = url.partition(b"?")
        if path != PATH:
            return False
        query = parse_qs(query_string.decode("latin-1"))
        if query.get("EIO") != ["4"] or query.get("transport") != ["websocket"] or "sid" in query:
            return False
        key = headers.get(b"sec-websocket-key", b"")
        if headers.get(b"sec-websocket-version") != b"13" or not valid_key(key):
            return False
        origin = headers.get(b"origin")
        # A refused origin is left to python-engineio, which refuses it (uvicorn answers 403).
        return self.origins is None or origin is None or origin.decode("latin-1") in self.origins

    def accept(
        self, transport: asyncio.Transport, url: bytes, headers: dict[bytes, bytes],
        client: tuple[str, int] | None, server_state: Any,
    ) -> EdgeSocket:
        key = headers[b"sec-websocket-key"]
        sock = EdgeSocket(self, transport, server_state)
        sid = sock.sid
        opening = eio_packet.Packet(eio_packet.OPEN, {
            "sid": sid, "upgrades": [], "pingInterval": int(self.ping_interval * 1000),
            "pingTimeout": int(self.ping_timeout * 1000), "maxPayload": self.max_size,
        }).encode().encode()
        transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n" + frame(TEXT, opening)
        )
        self.eio.sockets[sid] = sock
        environ = {"REMOTE_ADDR": client[0] if client else "", "QUERY_STRING": url.partition(b"?")[2].decode("latin-1"),
                   "PATH_INFO": PATH.decode(), "REQUEST_METHOD": "GET", "HTTP_UPGRADE": "websocket"}
        # python-socketio's connect event only records the environ; the client's Socket.IO
        # CONNECT comes as a message, in a task created after this one, so it runs after it.
        sock.spawn(sock.opened(environ))
        return sock


class EdgeSocket(asyncio.Protocol):
    """One client connection; python-engineio's socket interface where python-socketio uses it."""

    __slots__ = ("edge", "sid", "transport", "reader", "server_state", "timer", "awaiting_pong",
                 "closing", "closed", "paused", "backlog", "in_flight", "session", "unsent", "waiting")

    connected = True  # for python-engineio: this socket is open and on its final transport
    upgraded = True
    upgrading = False

    def __init__(self, edge: Edge, transport: asyncio.Transport, server_state: Any) -> None:
        self.edge = edge
        self.sid: str = edge.eio.generate_id()
        self.transport: asyncio.Transport | None = transport
        self.reader: FrameReader | None = FrameReader(edge.max_size)
        self.server_state = server_state
        self.timer: asyncio.TimerHandle | None = None
        self.awaiting_pong = False
        self.closing = False
        self.closed = False
        self.paused = False  # the transport's write buffer is over its high-water mark
        self.backlog = 0  # packets written while paused: what a queue would hold
        self.in_flight = 0
        self.waiting: collections.deque[tuple[int, bytes]] | None = None  # frames read, not yet handled
        self.session: dict[str, Any] = {}
        self.unsent: list[bytes] | None = None  # frames written since the edge last flushed
        server_state.connections.add(self)
        transport.set_protocol(self)
        self._schedule_ping()

    # ---- what the transport calls ----------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closing:
            self._closing_read(data)
            return
        try:
            frames = self.reader.feed(data)  # type: ignore[union-attr]  # None only once closing
        except ProtocolError as exc:
            self.reader = None  # what follows can't be framed: it is read and dropped
            self._close(exc.code, str(exc), self.edge.reason.TRANSPORT_ERROR)
            return
        if self.waiting is None:
            self.waiting = collections.deque(frames)  # made per read: an idle connection holds none
        else:
            self.waiting.extend(frames)
        self._take_waiting()

    def _take_waiting(self) -> None:
        """Handle the frames read, in order, while fewer than MAX_IN_FLIGHT messages are being
        handled; the rest wait for those, and the transport reads nothing more meanwhile. One
        read of 256 KB can hold 32,000 tiny frames: started all at once, their tasks held the
        loop for seconds."""
        waiting = self.waiting
        while waiting and self.in_flight < MAX_IN_FLIGHT:
            opcode, payload = waiting.popleft()
            if opcode == TEXT:
                self._engineio(payload)
            elif opcode == BINARY:
                self._message(payload)
            elif opcode == PING:
                self.write(frame(PONG, payload))
            elif opcode == CLOSE:  # the client's close: answer with its code, and the handshake is done
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else NORMAL
                self._close(code, "", self.edge.reason.CLIENT_DISCONNECT, answered=True)
            if self.closing:
                self.waiting = None
                return
        if not waiting:
            self.waiting = None
        if self.transport is not None:
            if self.waiting or self.in_flight >= MAX_IN_FLIGHT:
                self.transport.pause_reading()  # a client faster than its handlers waits in TCP, not here
            elif not self.paused:
                self.transport.resume_reading()

    def _closing_read(self, data: bytes) -> None:
        """After our close frame: wait for the client's, reading (not leaving unread data to reset the TCP)."""
        if self.reader is None or self.transport is None:
            return
        try:
            answered = any(opcode == CLOSE for opcode, _ in self.reader.feed(data))
        except ProtocolError:
            self.reader = None
            return
        if answered:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.server_state.connections.discard(self)
        self._end(self.edge.reason.TRANSPORT_CLOSE)
        self._stop_timer()

    def pause_writing(self) -> None:
        self.paused = True
        if self.transport is not None:
            # A client that does not read gets nothing more read from it either: its pings'
            # pongs and its events' acks cannot pile up here.
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        self.backlog = 0
        if self.transport is not None and self.in_flight < MAX_IN_FLIGHT and not self.waiting:
            self.transport.resume_reading()

    def shutdown(self) -> None:
        """uvicorn is stopping: tell the client to come back later, as its websocket protocol does."""
        self._close(RESTARTING, "server restarting", self.edge.reason.SERVER_DISCONNECT)

    # ---- Engine.IO -------------------------------------------------------

    def _engineio(self, payload: bytes) -> None:
        kind = payload[:1]
        if kind == b"4":
            try:
                self._message(payload[1:].decode())
            except UnicodeDecodeError:
                self._close(INVALID_DATA, "text frames must be UTF-8", self.edge.reason.TRANSPORT_ERROR)
        elif kind == b"3":
            if self.awaiting_pong:
                self.awaiting_pong = False
                self._schedule_ping()
        elif kind == b"2":
            self.write(frame(TEXT, b"3" + payload[1:]))
        elif kind == b"1":
            self._close(NORMAL, "", self.edge.reason.CLIENT_DISCONNECT)
        # 6 (noop) and anything unknown change nothing, as python-engineio has it.

    def _message(self, data: str | bytes) -> None:
        self.in_flight += 1
        self.spawn(self._handle(data))

    async def _handle(self, data: str | bytes) -> None:
        try:
            ack = await self.edge.on_message(self.sid, data)
            if ack is not None:
                self.write(frame(TEXT, ack))
        except Exception:
            log.debug("unreadable Socket.IO message ignored", exc_info=True)
        finally:
            self.in_flight -= 1
            if self.in_flight == MAX_IN_FLIGHT - 1 and not self.closing:
                self._take_waiting()

    async def opened(self, environ: dict[str, Any]) -> None:
        accepted = await self.edge.handlers["connect"](self.sid, environ)
        if accepted is not None and accepted is not True:
            self._close(NORMAL, "", self.edge.reason.SERVER_DISCONNECT)

    def _schedule_ping(self) -> None:
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.edge.ping_interval, self._ping)

    def _ping(self) -> None:
        self.write(frame(TEXT, b"2"))
        self.awaiting_pong = True
        self.timer = asyncio.get_running_loop().call_later(self.edge.ping_timeout, self._ping_timed_out)

    def _ping_timed_out(self) -> None:
        if self.awaiting_pong:
            self.write(frame(TEXT, b"1"))
            self._close(GOING_AWAY, "ping timeout", self.edge.reason.PING_TIMEOUT)

    # ---- writing -----------------------------------------------------------

    def write(self, data: bytes) -> None:
        """A ready frame: fan-out writes the same bytes to every recipient. It goes out with the
        edge's flush in the next loop turn (Edge.hold), with what else this socket gets by then."""
        if self.transport is not None:
            if self.paused:
                self.backlog += 1
            if self.unsent is None:
                self.unsent = [data]
                self.edge.hold(self)
            else:
                self.unsent.append(data)

    def flush(self) -> None:
        frames, self.unsent = self.unsent, None
        if frames and self.transport is not None:
            self.transport.write(frames[0] if len(frames) == 1 else b"".join(frames))

    async def send(self, pkt: eio_packet.Packet) -> None:
        encoded = pkt.encode()
        self.write(frame(TEXT, encoded.encode()) if isinstance(encoded, str) else frame(BINARY, encoded))

    # ---- ending ------------------------------------------------------------

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        """python-engineio's server-side close (`eio.disconnect`, shutdown)."""
        if self.closing:
            return
        self.closing = True
        self._stop_timer()
        await self._disconnected(reason or self.edge.reason.SERVER_DISCONNECT)
        if not abort:
            self.write(frame(TEXT, b"1"))
        self._shut(NORMAL, "")

    async def check_ping_timeout(self) -> bool:  # python-engineio's service task asks every socket
        return not self.closed

    def abort(self) -> None:
        """Drop a client that stopped reading: what it has not read is not worth a close handshake."""
        self.unsent = None
        if self.transport is not None:
            self.transport.abort()
        self._end(self.edge.reason.TRANSPORT_ERROR)

    def _close(self, code: int, text: str, reason: Any, answered: bool = False) -> None:
        if self.closing:  # our close frame is out already, or the connection is gone
            return
        self._end(reason)
        self._shut(code, text, answered)

    def _shut(self, code: int, text: str, answered: bool = False) -> None:
        """Our close frame; the TCP connection ends once the client answers it, or after CLOSE_TIMEOUT_S."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.flush()
        transport.write(close_frame(code, text))
        if answered:
            transport.close()
        # close() waits for the write buffer to drain: a client that reads nothing kept the
        # connection, its buffer and its memory for good. What it has not taken by then is dropped.
        self._stop_timer()
        self.timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, transport.abort)

    def _end(self, reason: Any) -> None:
        """The client went (or broke the protocol): tell python-socketio once."""
        if self.closing:
            return
        self.closing = True
        self._stop_timer()
        self.spawn(self._disconnected(reason))

    async def _disconnected(self, reason: Any) -> None:
        try:
            await self.edge.handlers["disconnect"](self.sid, reason)
        except Exception:
            log.exception("disconnect handler failed", extra={"sid": self.sid})
        finally:
            self.closed = True
            if self.edge.eio.sockets.get(self.sid) is self:
                del self.edge.eio.sockets[self.sid]

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def spawn(self, work: Any) -> None:
        # uvicorn's task set keeps each task alive and makes a graceful stop wait for it.
        task = asyncio.get_running_loop().create_task(work)
        tasks = self.server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def frame_for_all(socketio_packet: bytes) -> bytes:
    """The websocket frame of one Socket.IO packet, built once for every recipient."""
    return frame(TEXT, b"4" + socketio_packet)

