"""This process's sockets, of either kind, by Socket.IO room: what the fan-out writes to.

A socket is either the edge's (edge.py: a websocket that opened straight to Engine.IO)
or python-engineio's own (long-polling, or a websocket upgraded from it). Both sit in
python-engineio's socket table; python-socketio's manager knows which are in a room.
Nothing here awaits: a packet reaches every recipient in the loop turn it arrived in,
so packets of one channel leave in the order they came.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import socketio
from engineio import packet as eio_packet

from .edge import EdgeSocket, frame_for_all

log = logging.getLogger("liveset.fanout")

NAMESPACE = "/"


class LocalSockets:
    def __init__(self, sio: socketio.AsyncServer, max_queued: int, on_cut_off: Callable[[], None]) -> None:
        self.sio = sio
        self.max_queued = max_queued  # a socket with this many packets unsent is cut off
        self.on_cut_off = on_cut_off

    async def enter(self, sid: str, room: str) -> None:
        await self.sio.enter_room(sid, room)

    def leave(self, sid: str, room: str) -> None:
        """At once: nothing sent to `room` after this reaches `sid`."""
        self.sio.manager.basic_leave_room(sid, NAMESPACE, room)

    def members(self, room: str) -> list[str]:
        return [sid for sid, _ in self.sio.manager.get_participants(NAMESPACE, room)]

    def send(self, room: str, packet: bytes) -> None:
        """One Socket.IO packet (`2["name",{...}]`) to every socket in `room`, encoded once."""
        ready = frame_for_all(packet)  # the edge's sockets all get these same bytes
        pkt: eio_packet.Packet | None = None
        sockets = self.sio.eio.sockets
        for sid, eio_sid in self.sio.manager.get_participants(NAMESPACE, room):
            sock = sockets.get(eio_sid)
            if sock is None or sock.closing or sock.closed:
                continue
            edge = isinstance(sock, EdgeSocket)
            if (sock.backlog if edge else sock.queue.qsize()) >= self.max_queued:
                self._cut_off(sid, sock if edge else None)
            elif edge:
                sock.write(ready)
            else:
                # python-engineio's socket: what its send() does, minus a task and an await per recipient.
                pkt = pkt or eio_packet.Packet(eio_packet.MESSAGE, data=packet.decode())
                sock.queue.put_nowait(pkt)

    async def drop_all(self) -> None:
        """End every connection of this process as a restart does: the clients reconnect by
        themselves (a Socket.IO DISCONNECT, or Engine.IO's close packet on a websocket, would
        tell them not to)."""
        for eio_sid, sock in list(self.sio.eio.sockets.items()):
            if isinstance(sock, EdgeSocket):
                sock.shutdown()  # close code 1012, "server restarting"
            else:
                await self.sio.eio.disconnect(eio_sid)

    def _cut_off(self, sid: str, edge: EdgeSocket | None) -> None:
        """A device that stops reading is cut off rather than growing this process's memory;
        it reconnects and resyncs."""
        self.on_cut_off()
        log.warning("device is not reading; disconnecting it", extra={"sid": sid})
        if edge is not None:
            edge.abort()  # it reads nothing, so a goodbye would never reach it
        else:
            asyncio.get_running_loop().create_task(self.sio.disconnect(sid))
