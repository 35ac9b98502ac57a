"""uvicorn's httptools protocol, letting go of its parser once the connection is a websocket.

The protocol and its C parser refer to each other (the parser calls back into
the protocol). After an upgrade the transport belongs to the websocket
protocol and this one is done, but that cycle kept it — the request's scope,
headers, parser and flow control, about 25 objects per connection — until a
garbage collection, which runs rarely here (gc_tuning.py). Dropping the parser
breaks the cycle, so reference counting frees the HTTP side of each websocket
as soon as it is upgraded. Used by the Procfile's `--http`, `liveset serve`
and the tests.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class UpgradeReleasingHttpToolsProtocol(HttpToolsProtocol):
    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()
        self.parser = None  # type: ignore[assignment]
