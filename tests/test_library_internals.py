"""What realtime/transport/ relies on inside its libraries, checked one by one.

The transport fence uses attributes python-engineio, python-socketio, uvicorn and
redis-py do not document. pyproject.toml bounds their versions; these tests are what
an upgrade inside the bounds meets first: a renamed attribute fails here, by name,
rather than as an AttributeError on a live connection.
"""

from __future__ import annotations

import inspect
import json
import re
from typing import Any

import engineio
import pytest
import socketio
from engineio.async_drivers import asgi as engineio_asgi
from redis.asyncio import connection as redis_connection
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from realtime.transport import engineio_websocket
from realtime.transport.edge import EdgeSocket
from realtime.transport.socket_manager import Manager
from realtime.transport.socketio_server import Server


async def _answer(sid: str, body: Any) -> bytes:
    return b"[]"


@pytest.fixture
def sio() -> socketio.AsyncServer:
    server = socketio.AsyncServer(async_mode="asgi", client_manager=Manager())
    engineio_websocket.install(server.eio)
    return server


def _source(obj: Any) -> str:
    return inspect.getsource(obj)


def test_engineio_server_has_what_the_edge_reads_and_writes(sio: socketio.AsyncServer) -> None:
    eio = sio.eio
    assert isinstance(eio.sockets, dict)  # edge.py registers its sockets here
    assert {"connect", "message", "disconnect"} <= set(eio.handlers)  # and calls these itself
    for reason in ("CLIENT_DISCONNECT", "SERVER_DISCONNECT", "PING_TIMEOUT", "TRANSPORT_CLOSE", "TRANSPORT_ERROR"):
        assert hasattr(eio.reason, reason), reason
    for setting in ("ping_interval", "ping_timeout", "max_http_buffer_size", "cors_allowed_origins"):
        assert hasattr(eio, setting), setting
    assert isinstance(eio.generate_id(), str)


def test_engineio_calls_nothing_on_a_socket_that_edge_sockets_lack() -> None:
    """python-engineio treats every entry of its socket table as its own AsyncSocket. What it
    calls on one, the edge's sockets have; the rest it calls only while a socket is still on
    long-polling (`upgraded` false), which an edge socket never is."""
    used = set(re.findall(r"\b(?:socket|s)\.([a-z_]+)", _source(engineio.async_server.AsyncServer)))
    polling_only = {"handle_get_request", "handle_post_request", "poll", "schedule_ping"}
    missing = {name for name in used - polling_only if not hasattr(EdgeSocket, name) and name not in
               EdgeSocket.__slots__}
    assert not missing, f"python-engineio now uses {missing} on its sockets"
    assert EdgeSocket.upgraded and EdgeSocket.connected
    assert "check_ping_timeout" in _source(engineio.async_server.AsyncServer._service_task)


def test_the_websocket_adapter_is_the_one_engineio_uses(sio: socketio.AsyncServer) -> None:
    assert sio.eio._async["websocket"] is engineio_websocket.CleanCloseWebSocket
    assert issubclass(engineio_websocket.CleanCloseWebSocket, engineio_asgi.WebSocket)
    assert "asgi_receive" in _source(engineio_asgi.WebSocket)
    assert "wait" in vars(engineio_asgi.WebSocket)


def test_socketio_server_and_manager_have_what_the_transport_uses(sio: socketio.AsyncServer) -> None:
    # socketio_server.py: python-engineio's message event reaches the subclass's override, whose
    # fallback is the base's handler.
    server = Server(_answer, json.loads, async_mode="asgi")
    assert server.eio.handlers["message"] == server._handle_eio_message
    assert "_handle_eio_message" in vars(socketio.AsyncServer) and "_handle_event" in vars(socketio.AsyncServer)
    assert list(inspect.signature(socketio.AsyncServer._handle_event).parameters) == [
        "self", "eio_sid", "namespace", "id", "data"]
    assert engineio.payload.Payload.max_decode_packets == 256  # set by socketio_server.py
    assert socketio.packet.EVENT == 2 and socketio.packet.BINARY_EVENT == 5 and socketio.packet.BINARY_ACK == 6
    manager = sio.manager
    for method in ("basic_enter_room", "basic_leave_room", "basic_disconnect", "get_participants",
                   "sid_from_eio_sid", "is_connected", "get_rooms"):
        assert callable(getattr(manager, method, None)), method
    # socket_manager.py: the base manager's pending sids, and its steps on a disconnect.
    assert isinstance(manager.pending_connect, dict) and isinstance(manager.pending_disconnect, dict)
    assert isinstance(manager.callbacks, dict)
    base = _source(socketio.base_manager.BaseManager.basic_disconnect)
    for step in ("pending_connect", "pending_disconnect", "callbacks", "basic_leave_room"):
        assert step in base, f"python-socketio's basic_disconnect no longer uses {step}"


async def test_socket_manager_keeps_the_room_table_the_base_class_reads() -> None:
    manager = Manager()
    manager.set_server(socketio.AsyncServer(async_mode="asgi"))
    sid = await manager.connect("eio-1", "/")
    manager.basic_enter_room(sid, "/", "room")
    assert list(manager.get_participants("/", "room")) == [(sid, "eio-1")]
    assert set(manager.get_rooms(sid, "/")) == {sid, "room"}
    manager.basic_disconnect(sid, "/")
    assert list(manager.get_participants("/", "room")) == []
    assert manager.get_rooms(sid, "/") == []


def test_uvicorn_protocol_has_what_the_upgrade_hand_off_reads() -> None:
    source = _source(HttpToolsProtocol)
    for attribute in ("app_state", "headers", "url", "connections", "transport", "client", "server_state", "parser"):
        assert f"self.{attribute}" in source, attribute
    assert callable(HttpToolsProtocol.handle_websocket_upgrade)
    state = ServerState()
    assert isinstance(state.connections, set) and isinstance(state.tasks, set)


def test_redis_py_parses_urls_into_what_the_own_connection_opens() -> None:
    tcp = redis_connection.parse_url("redis://user:pw@host:7000/3")
    assert {k: tcp[k] for k in ("host", "port", "username", "password", "db")} == {
        "host": "host", "port": 7000, "username": "user", "password": "pw", "db": 3}
    assert redis_connection.parse_url("rediss://host")["connection_class"] is redis_connection.SSLConnection
    unix = redis_connection.parse_url("unix:///tmp/redis.sock")
    assert unix["connection_class"] is redis_connection.UnixDomainSocketConnection and unix["path"] == "/tmp/redis.sock"
    context = redis_connection.SSLConnection(host="h", ssl_cert_reqs="none").ssl_context.get()
    assert context.check_hostname is False
