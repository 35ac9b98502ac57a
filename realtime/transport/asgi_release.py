"""ASGI middleware: once a request or websocket ends, the app holds the server's connection no more.

python-engineio builds a class per request whose method closes over the ASGI
`receive` (a method of uvicorn's protocol object). A class is always part of a
reference cycle, so through it every finished connection's transport,
protocol, parser and buffers — about 120 objects — stayed alive until a full
garbage collection. With automatic collection off (gc_tuning.py), a reconnect
storm of 5,000 clients left 550,000 such objects and one 1.9 s collection in
the middle of the storm (docs/performance.md). Here the app gets `receive`
through a small relay that lets go of it when the app returns, so reference
counting frees the connection at once and a cycle keeps only the relay.
`send`, on the path of every outbound frame, is in no cycle and passes as it is.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("liveset.edge")


class _Relay:
    __slots__ = ("_receive", "_ended")

    def __init__(self, scope_type: str, receive: Receive) -> None:
        self._receive: Receive | None = receive
        self._ended: Message = {"type": f"{scope_type}.disconnect"}

    async def receive(self) -> Message:
        if self._receive is None:
            return self._ended
        return await self._receive()

    def release(self) -> None:
        self._receive = None


class ReleaseOnEnd:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.warned = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket" and not self.warned and b"sid=" not in scope.get("query_string", b""):
            # A websocket that opened straight to Engine.IO belongs to the edge (http_protocol.py):
            # here it means uvicorn runs without the Procfile's --http, and every connection costs
            # about 44 KB instead of 6. It still works, so say it once rather than refuse it.
            self.warned = True
            log.warning("a websocket reached the ASGI app, not liveset's edge: run uvicorn with "
                        "--http realtime.transport.http_protocol:UpgradeReleasingHttpToolsProtocol (see the Procfile)")
        relay = _Relay(scope["type"], receive)
        try:
            await self.app(scope, relay.receive, send)
        finally:
            relay.release()
