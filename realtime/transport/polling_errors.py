"""Long-polling requests python-engineio cannot handle answer 400, not 500 with a traceback.

A POST to a session the client itself closed raises inside python-engineio (KeyError:
"Session is disconnected"), and uvicorn then logs a traceback per request: anyone with a
session id could fill the log. Such a request is the client's mistake, so it gets 400 and
one warning line.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("liveset.edge")

PATH = "/socket.io/"


class PollingErrors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PATH):
            await self.app(scope, receive, send)
            return
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
            log.warning("long-polling request refused", extra={"error": f"{type(exc).__name__}: {exc}"})
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
            await send({"type": "http.response.body", "body": b"bad request"})
