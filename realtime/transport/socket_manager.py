"""python-socketio's client manager with bookkeeping that does not grow with the number of clients.

Its disconnect walks (and copies) every room of the namespace to find the
client's rooms, `get_rooms` walks them all too, and its pending connects and
disconnects are lists searched and removed from by value. Every client has a
room of its own, so each of those is O(clients): a reconnect storm of n clients
costs n² (measured: 10 % of a process's CPU during a 5,000-client storm,
docs/performance.md). Here each client's rooms are kept beside the room table,
and the pending sets are dicts that answer the same list calls in O(1).
"""

from __future__ import annotations

from typing import Any

import socketio


class _Pending(dict[str, None]):
    """The list calls base_manager makes on its pending sids (append, remove, in, len)."""

    def append(self, sid: str) -> None:
        self[sid] = None

    def remove(self, sid: str) -> None:
        del self[sid]


class _PendingByNamespace(dict[str, _Pending]):
    def __setitem__(self, namespace: str, sids: Any) -> None:  # base_manager assigns a new []
        super().__setitem__(namespace, _Pending(dict.fromkeys(sids)))


class Manager(socketio.AsyncManager):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.pending_connect = _PendingByNamespace()
        self.pending_disconnect = _PendingByNamespace()
        self._rooms_of: dict[tuple[str, str], set[Any]] = {}  # (namespace, sid) -> its rooms, None included

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self._rooms_of.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        rooms = self._rooms_of.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._rooms_of[(namespace, sid)]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        # The base's steps (python-socketio 5.x), with the client's own rooms instead of a walk over all.
        for room in list(self._rooms_of.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if not sids:
                    del pending[namespace]

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        return [room for room in self._rooms_of.get((namespace, sid), ()) if room is not None]
