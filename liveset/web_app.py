"""The workout web app (liveset/web/): static files at `/`, served when WEB_APP is on (`liveset
dev` turns it on). No build step: the files are what the browser runs, with the vendored
socket.io-client beside them (liveset/web/vendor/README.md)."""

from __future__ import annotations

from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WEB_DIR = Path(__file__).parent / "web"

# The REST side's policy is `default-src 'none'` (it serves JSON, never a page); the app's
# pages may load their own scripts and styles, and open the websocket, from this origin only.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'none'",
    "Cache-Control": "no-cache",  # revalidated by ETag: a new release is seen at the next load
}


class _AppHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def mount() -> Mount:
    """The app at `/`, after every other route."""
    return Mount("/", app=_AppHeaders(StaticFiles(directory=WEB_DIR, html=True)), name="web")
