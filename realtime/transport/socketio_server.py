"""python-socketio's server, with every client event of the default namespace answered by one function.

python-socketio looks a client's event name up in its handler table: an event a client
named `disconnect` or `connect` ran those handlers (a socket that freed its device slot
and stayed open), a name that was not a string raised inside the library, an event that
was not JSON got no ack, and a binary event's attachments were buffered without bound.
Here every EVENT of the default namespace, from either transport, whatever its name and
body, goes to `answer`, and its ack goes straight back; the connect and disconnect
handlers run only for connecting and disconnecting.

It is also the fast path: python-socketio's way there and back (packet objects, its
handler lookup, an ACK packet through python-engineio's send) was about a ninth of a
process's CPU under load (docs/performance.md). What is not an event (CONNECT,
DISCONNECT, a client's ACK, other namespaces) goes the library's way.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import socketio
from engineio.payload import Payload

log = logging.getLogger("liveset.socketio")

# python-engineio refuses a long-polling POST of more than 16 packets whole, and none of its
# events is answered; socket.io-client sends every event it buffered while offline in one POST.
# The POST's size limit (MAX_MESSAGE_BYTES) and the rate limit bound the rest.
Payload.max_decode_packets = 256

NAMESPACE = "/"


class Unreadable(NamedTuple):
    """What `answer` gets for an event it cannot read: why, in words for the client."""

    why: str


NOT_JSON = Unreadable("the event is not valid JSON (NaN and Infinity are not)")
BINARY = Unreadable("binary attachments are not part of the protocol; send JSON")

# (sid, the event as the client sent it: a JSON value, [name, payload] when well formed,
# or Unreadable) -> the ack's arguments encoded as a JSON array.
Answer = Callable[[str, Any], Awaitable[bytes]]

# An EVENT (2) or BINARY_EVENT (5, with its attachment count) of the default namespace (left
# out, or written "/,"), its ack id if any (ASCII digits: python-socketio's own decoder takes
# no more than 100 of them).
_EVENT = re.compile(r"(?:2|5[0-9]+-)(?:/,)?([0-9]{0,100})(?![0-9/])")


class Server(socketio.AsyncServer):  # type: ignore[misc]
    def __init__(self, answer: Answer, decode: Callable[[str], Any], connect_timeout_s: float = 15.0,
                 **options: Any) -> None:
        super().__init__(**options)
        self.answer = answer
        self.decode = decode  # JSON as clients send it; raises ValueError
        self.connect_timeout_s = connect_timeout_s

    async def message(self, eio_sid: str, data: str | bytes) -> bytes | None:
        """One Socket.IO message of a client; returns the Engine.IO payload of an ack to send, if any."""
        kind = data[:1]
        if type(data) is not str or kind in ("3", "6"):
            # An attachment, an ACK or a BINARY_ACK: no event of ours asks a client for an ack (python-
            # socketio logged a warning for each), and binary packets never reach python-socketio,
            # so no attachment is ever awaited or buffered.
            return None
        event = _EVENT.match(data)
        if event is None:
            if kind != "5":  # a binary event of another namespace is dropped like the rest
                try:
                    await super()._handle_eio_message(eio_sid, data)
                except ValueError:  # python-socketio's word for a packet it cannot read
                    log.debug("unreadable Socket.IO packet ignored", exc_info=True)
            return None
        sid = self._session(eio_sid)
        if sid is None:
            return None  # no session (yet, or any more): nothing to answer, so nothing is read
        if kind == "5":
            body: Any = BINARY
        else:
            try:
                body = self.decode(data[event.end():])
            except ValueError:
                body = NOT_JSON
        return await self._reply(sid, event.group(1), body)

    # ---- connections without a session -----------------------------------------------------
    # An Engine.IO connection answers pings whether or not a Socket.IO session is on it: one that
    # never sent CONNECT, was refused, or whose session the server ended (a replaced device, an
    # expired token) stayed open as long as the client liked. The official client sends CONNECT
    # at once and closes when its session ends; what is still without a session
    # `connect_timeout_s` later is closed (Socket.IO's own server has connectTimeout for this).

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> None:
        await super()._handle_eio_connect(eio_sid, environ)
        self._close_later_if_idle(eio_sid)

    async def disconnect(self, sid: str, namespace: str | None = None, ignore_queue: bool = False) -> None:
        eio_sid = self.manager.eio_sid_from_sid(sid, namespace or NAMESPACE)
        await super().disconnect(sid, namespace, ignore_queue)
        if eio_sid is not None:
            self._close_later_if_idle(eio_sid)

    def _close_later_if_idle(self, eio_sid: str) -> None:
        if self._open(eio_sid):
            loop = asyncio.get_running_loop()
            loop.call_later(self.connect_timeout_s, lambda: loop.create_task(self._close_if_idle(eio_sid)))

    async def _close_if_idle(self, eio_sid: str) -> None:
        if self._open(eio_sid) and self.manager.sid_from_eio_sid(eio_sid, NAMESPACE) is None:
            await self.eio.disconnect(eio_sid)

    def _open(self, eio_sid: str) -> bool:
        sock = self.eio.sockets.get(eio_sid)
        return sock is not None and not sock.closed and not getattr(sock, "closing", False)

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        """python-socketio's, and then: a client that went while the connect handler waited (on
        Redis) had its disconnect ignored, the socket not being connected yet, so the session,
        device entry and subscription the handler made would outlive it until its token expired.
        Its disconnect runs now instead."""
        await super()._handle_connect(eio_sid, namespace, data)
        if not self._open(eio_sid):
            await self._handle_disconnect(eio_sid, namespace, self.reason.CLIENT_DISCONNECT)

    async def _handle_disconnect(self, eio_sid: str, namespace: str | None, reason: Any = None) -> None:
        """A client's own DISCONNECT leaves its connection without a session too."""
        await super()._handle_disconnect(eio_sid, namespace, reason)
        self._close_later_if_idle(eio_sid)

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: int | None, data: Any) -> None:
        """An EVENT python-socketio decoded itself (a namespace written another way, "/?x,"): the
        same answer, never its own handler lookup."""
        if (namespace or NAMESPACE) == NAMESPACE:
            sid = self._session(eio_sid)
            ack = None if sid is None else await self._reply(sid, "" if id is None else str(id), data)
            if ack is not None:
                await self.eio.send(eio_sid, ack[1:].decode())

    async def _reply(self, sid: str, ack_id: str, body: Any) -> bytes | None:
        """`answer`'s reply to a connected socket's event, as the Engine.IO payload of its ack."""
        reply = await self.answer(sid, body)
        return b"43" + ack_id.encode() + reply if ack_id else None

    def _session(self, eio_sid: str) -> str | None:
        """The connection's Socket.IO session id, while it is connected."""
        sid: str | None = self.manager.sid_from_eio_sid(eio_sid, NAMESPACE)
        return sid if sid is not None and self.manager.is_connected(sid, NAMESPACE) else None

    async def _handle_eio_message(self, eio_sid: str, data: str | bytes) -> None:
        """python-engineio's message event: long-polling, and websockets upgraded from it."""
        ack = await self.message(eio_sid, data)
        if ack is not None:
            await self.eio.send(eio_sid, ack[1:].decode())  # python-engineio adds the message type
