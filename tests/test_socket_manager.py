"""The client manager's own bookkeeping (transport/socket_manager.py) agrees with python-socketio's room table."""

from __future__ import annotations

import socketio

from realtime.transport.socket_manager import Manager


async def test_rooms_and_pending_sets_are_kept_and_emptied_per_client() -> None:
    manager = Manager()
    socketio.AsyncServer(async_mode="asgi", client_manager=manager)
    a = await manager.pre_connect("eio-a", "/")
    b = await manager.pre_connect("eio-b", "/")
    assert manager.is_pre_connected(a, "/") and manager.is_pre_connected(b, "/")
    assert await manager.connect(a, "/") == a and not manager.is_pre_connected(a, "/")
    await manager.enter_room(a, "/", "u:1")
    await manager.enter_room(b, "/", "u:1")
    await manager.enter_room(a, "/", "r:7")
    assert sorted(manager.get_rooms(a, "/")) == sorted([a, "u:1", "r:7"])
    assert {sid for sid, _ in manager.get_participants("/", "u:1")} == {a, b}

    manager.pre_disconnect(a, "/")
    await manager.disconnect(a, "/")
    assert manager.get_rooms(a, "/") == [] and not manager.is_connected(a, "/")
    assert {sid for sid, _ in manager.get_participants("/", "u:1")} == {b}
    assert "r:7" not in manager.rooms["/"] and a not in manager.rooms["/"]
    assert "/" not in manager.pending_disconnect

    await manager.disconnect(b, "/")  # still pending connect: it leaves that set too
    assert manager.rooms == {} and manager.pending_connect == {} and manager._rooms_of == {}
