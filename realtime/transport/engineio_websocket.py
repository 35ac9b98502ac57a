"""python-engineio's ASGI websocket, ending a connection without an exception when the client goes.

Its adapter raises OSError on the ASGI `websocket.disconnect` message. The
handler catches it in a frame that holds the task that raised it, so every
closed connection leaves a reference cycle (exception -> traceback -> frame ->
task -> exception) that keeps its Engine.IO socket, tasks and frames alive
until a collection, which runs rarely here (gc_tuning.py; what that cost in a
reconnect storm: asgi_release.py). Answering the disconnect with None instead takes the
handler's own "connection closed by client" path (during an upgrade from
polling, its "failed upgrade" path), and reference counting frees the
connection at once.
"""

from __future__ import annotations

from typing import Any

from engineio.async_drivers.asgi import WebSocket


class CleanCloseWebSocket(WebSocket):  # type: ignore[misc]
    async def wait(self) -> Any:
        event = await self.asgi_receive()
        if event["type"] == "websocket.disconnect":
            return None
        if event["type"] != "websocket.receive":
            raise OSError()
        if event.get("bytes") is not None:
            return event["bytes"]
        if event.get("text") is not None:
            return event["text"]
        raise OSError()


def install(eio: Any) -> None:
    """Make an engineio.AsyncServer in ASGI mode use CleanCloseWebSocket."""
    eio._async = {**eio._async, "websocket": CleanCloseWebSocket}
