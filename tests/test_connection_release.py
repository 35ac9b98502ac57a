"""A finished connection is freed by reference counting, not left for a garbage collection.

The server runs with automatic collection off (realtime/core/gc_tuning.py), so a
connection whose objects sit in a reference cycle stays in memory until the
next full collection; a reconnect storm piled up hundreds of thousands of them
(realtime/transport/asgi_release.py, realtime/transport/engineio_websocket.py,
realtime/transport/http_protocol.py, realtime/transport/edge.py).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import uuid

import httpx
import pytest
import socketio
import websockets
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from loadtest.wsclient import SocketIOClient
from realtime.transport.edge import EdgeSocket

from .clients import token
from .test_gc_tuning import collection_off


def _websocket_protocols() -> list[object]:
    return [o for o in gc.get_objects() if type(o).__module__.startswith("uvicorn.protocols.websockets.")]


def _edge_sockets() -> list[object]:
    return [o for o in gc.get_objects() if isinstance(o, EdgeSocket)]


def _http_protocols() -> list[object]:
    return [o for o in gc.get_objects() if isinstance(o, HttpToolsProtocol)]


async def test_closed_and_dropped_connections_are_freed_without_a_collection(server: str) -> None:
    uid = f"user-{uuid.uuid4().hex[:8]}"
    with collection_off():
        gc.collect()
        already = {id(o) for o in _websocket_protocols() + _http_protocols() + _edge_sockets()}
        clients = []
        for n in range(4):
            client = SocketIOClient(server, {"token": token(uid), "device_id": f"d{n}"}, lambda *_: None, lambda: 0)
            await client.connect()
            clients.append(client)
        # gc.get_objects() lists unreachable objects too while no collection runs: an
        # EdgeSocket left in a cycle would still be counted below.
        assert len([o for o in _edge_sockets() if id(o) not in already]) == len(clients)
        # A direct websocket is the edge's: uvicorn's websocket protocol serves none of them.
        assert [o for o in _websocket_protocols() if id(o) not in already] == []
        # The HTTP protocol that served each upgrade is gone as soon as the websocket took over.
        assert [o for o in _http_protocols() if id(o) not in already] == []

        await clients[0].close()  # a close handshake
        await clients[1].close()
        for client in clients[2:]:  # a phone losing its network: no handshake
            client.abort()
            await client.closed.wait()

        for _ in range(100):  # the server notices each end on its own loop turn
            if not [o for o in _edge_sockets() if id(o) not in already]:
                break
            await asyncio.sleep(0.05)
        assert [o for o in _edge_sockets() if id(o) not in already] == []


async def test_a_client_that_upgrades_from_polling_works_and_leaves_cleanly(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    uid = f"user-{uuid.uuid4().hex[:8]}"
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(server, auth={"token": token(uid), "device_id": "browser"}, wait_timeout=5)
    try:
        for _ in range(50):
            if client.transport() == "websocket":
                break
            await asyncio.sleep(0.05)
        assert client.transport() == "websocket"
        answer = await client.call("time:sync", {}, timeout=5)
        assert answer["ok"] is True and answer["data"]["server_time"] > 0
    finally:
        await client.disconnect()
    await asyncio.sleep(0.2)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_websocket_dropped_during_its_upgrade_from_polling_leaves_cleanly(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with httpx.AsyncClient(base_url=server) as http:
        opening = (await http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})).text
    sid = json.loads(opening[1:])["sid"]
    ws_url = server.replace("http://", "ws://") + f"/socket.io/?EIO=4&transport=websocket&sid={sid}"
    async with websockets.connect(ws_url) as ws:
        ws.transport.abort()  # gone before the upgrade's probe
    await asyncio.sleep(0.2)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
