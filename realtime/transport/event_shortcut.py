"""Socket.IO messages from the websocket edge: a plain EVENT goes straight to the dispatch table.

python-socketio's way there and back (packet objects, its handler lookup, an ACK packet
through python-engineio's send) was about a ninth of a process's CPU under load
(docs/performance.md). A plain EVENT of the default namespace (every event an app sends)
is answered by `answer`; everything else (connects, acks, binary, other namespaces, names
python-socketio has handlers of its own for, what does not parse) goes the library's
way, as from any other transport.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import socketio

NAMESPACE = "/"

# (sid, the event's name or None when its body is not JSON, its arguments) -> the ack's
# arguments, encoded as a JSON array.
Answer = Callable[[str, str | None, list[Any]], Awaitable[bytes]]

class EventShortcut:
    def __init__(self, sio: socketio.AsyncServer, answer: Answer, decode: Callable[[str], Any]) -> None:
        self.sio = sio
        self.answer = answer
        self.decode = decode  # JSON as clients send it; raises ValueError

    async def __call__(self, eio_sid: str, data: str | bytes) -> bytes | None:
        """Returns the Engine.IO payload of the event's ack, if any, for the edge to write."""
        event = self._plain_event(data)
        if event is not None:
            ack_id, name, args = event
            manager = self.sio.manager
            sid = manager.sid_from_eio_sid(eio_sid, NAMESPACE)
            if sid is not None and manager.is_connected(sid, NAMESPACE) and name not in self.sio.handlers[NAMESPACE]:
                reply = await self.answer(sid, name, args)
                return None if ack_id is None else b"43" + ack_id + reply
        await self.sio.eio.handlers["message"](eio_sid, data)  # python-socketio's own handler
        return None

    def _plain_event(self, data: str | bytes) -> tuple[bytes | None, str | None, list[Any]] | None:
        """(ack id, name, arguments) of `2[<id>]["name", ...]` (name None when the rest does not
        parse), or None for anything else."""
        if type(data) is not str or data[:1] != "2":
            return None
        start = data.find("[")
        if start < 0:
            return None  # no payload
        ack_id = data[1:start]
        if ack_id and not (ack_id.isdigit() and len(ack_id) <= 100):
            return None  # a namespace, an attachment count, or an id python-socketio refuses
        try:
            body = self.decode(data[start:])
        except ValueError:
            return (ack_id.encode(), None, []) if ack_id else None
        if type(body) is not list or not body or type(body[0]) is not str or not body[0]:
            return None
        return (ack_id.encode() if ack_id else None), body[0], body[1:]
