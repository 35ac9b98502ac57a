"""Long-polling requests python-engineio cannot handle answer 400, not 500 with a traceback.

A POST to a session the client itself closed raises inside python-engineio (KeyError:
"Session is disconnected"), and uvicorn then logs a traceback per request. A POST whose body
is not Engine.IO packets a client sends (not UTF-8, an empty packet, a packet type only the
server sends, binary that is not base64, more packets than python-engineio decodes) is
answered "OK" by python-engineio, which logs it as ERROR with its traceback; an open, ping or
noop from the client ends its session and leaves the POST unanswered; a body over the limit
ends the session too. Anyone with a session id could fill the log. Such a request is the client's
mistake, so it gets 400 and one warning line; its session goes on. python-engineio's own
400s (an unsupported EIO version, an unknown sid) are logged by it as ERROR once and INFO
after: as WARNING here, the client's mistake too.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from engineio.payload import Payload
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("liveset.edge")

PATH = "/socket.io/"
CLIENT_PACKET_TYPES = "1345"  # close, pong, message, upgrade; "b": base64 binary (0, 2, 6: the server's)
_ENGINEIO_CLIENT_MISTAKES = ("The client is using an unsupported version", "Invalid session")


class PollingErrors:
    def __init__(self, app: ASGIApp, max_body: int, sessions: Mapping[str, Any]) -> None:
        self.app = app
        self.max_body = max_body  # MAX_MESSAGE_BYTES: python-engineio would end the session for more
        self.sessions = sessions  # python-engineio's sockets by sid
        logging.getLogger("engineio.server").addFilter(_client_mistakes_as_warnings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PATH):
            await self.app(scope, receive, send)
            return
        sid = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("sid")
        if sid and sid[0] not in self.sessions:
            # python-engineio would answer 400 too, but each request it serves leaves a class in a
            # reference cycle that only the 10-minute full collection frees (gc_tuning.py): 470
            # such requests a second from one client grew the process by ~1 MB a second.
            await _refuse(send, "unknown session id", "Invalid session")
            return
        if scope["method"] == "POST":
            read, body = await self._body(receive)
            problem = body is not None and _not_packets(body, self.max_body)
            if problem:
                await _refuse(send, problem, f"bad request: {problem}")
                return
            receive = _replay(read, receive)
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except (KeyError, ValueError) as exc:  # python-engineio's words for a request it cannot serve
            if started:
                raise
            await _refuse(send, f"{type(exc).__name__}: {exc}", "bad request")

    async def _body(self, receive: Receive) -> tuple[list[Message], bytes | None]:
        """The request's messages as read, and its body (None: the client left), read whole
        or to just past `max_body`."""
        read: list[Message] = []
        body = b""
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                return read, None
            body += message.get("body", b"")
            if len(body) > self.max_body or not message.get("more_body", False):
                return read, body


def _not_packets(body: bytes, max_body: int) -> str:
    """What makes `body` not a long-polling payload of a client's Engine.IO packets ('' when it is one)."""
    if len(body) > max_body:
        return f"the body is over {max_body} bytes"
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    packets = text.split("\x1e")
    if len(packets) > Payload.max_decode_packets:
        return f"more than {Payload.max_decode_packets} packets"
    for packet in packets:
        if not packet:
            return "an empty packet"
        if packet[0] == "b":
            try:
                base64.b64decode(packet[1:])
            except ValueError:  # binascii.Error, or a character that is not ASCII
                return "a binary packet that is not base64"
        elif packet[0] not in CLIENT_PACKET_TYPES:
            return f"packet type {packet[0]!r} is not one a client sends"
    return ""


def _replay(read: list[Message], receive: Receive) -> Receive:
    async def replayed() -> Message:
        return read.pop(0) if read else await receive()
    return replayed


async def _refuse(send: Send, why: str, answer: str) -> None:
    log.warning("long-polling request refused", extra={"error": why})
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
    await send({"type": "http.response.body", "body": answer.encode()})


def _client_mistakes_as_warnings(record: logging.LogRecord) -> bool:
    if record.levelno >= logging.ERROR and record.getMessage().startswith(_ENGINEIO_CLIENT_MISTAKES):
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True
