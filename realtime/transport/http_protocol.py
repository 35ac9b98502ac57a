"""uvicorn's httptools protocol, handing Engine.IO websockets to liveset's edge.

A websocket upgrade that the edge takes (edge.py: a fresh Engine.IO v4
websocket on /socket.io/) gets its transport handed to an `EdgeSocket`;
any other upgrade goes to uvicorn's websocket protocol and the ASGI app, as
before. The edge is found in the lifespan state, so each server — the tests
run several in one process — serves its own app.

Either way the parser is dropped after the upgrade: it and the protocol refer
to each other, and that cycle kept the request's scope, headers, parser and
flow control, about 25 objects per connection, until a garbage collection,
which runs rarely here (gc_tuning.py). Used by the Procfile's `--http`,
`liveset serve` and the tests.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .edge import STATE_KEY


class UpgradeReleasingHttpToolsProtocol(HttpToolsProtocol):
    def handle_websocket_upgrade(self) -> None:
        edge = self.app_state.get(STATE_KEY)
        headers = dict(self.headers)
        if edge is not None and edge.takes(self.url, headers):
            self.connections.discard(self)
            edge.accept(self.transport, self.url, headers, self.client, self.server_state)
        else:
            super().handle_websocket_upgrade()
        self.parser = None  # type: ignore[assignment]
