"""Fan-out: Redis pub/sub -> this process's sockets, in seq order.

Each Lua script publishes an event once, as a ready-made Socket.IO packet, on
the user's channel. Each process holds one pub/sub connection subscribed to the
channels of the users who have a device connected to it (and only those)
(subscriber.py), which calls `deliver` for each message as it is parsed:
messages of a channel arrive in publish order, which is seq order, and are
written to each local socket without awaiting in between — so no device sees
two events of a workout out of order, and the packet (for the edge's sockets,
the websocket frame) is encoded once for all recipients, not once per socket.

Pub/sub is at-most-once: a device that sees a gap in `seq`, or reconnects,
calls workout:sync; when the pub/sub connection was lost and is back, every
local socket gets session:ready again (`on_restored`). A device that stops reading is cut off once its queue is
long, rather than growing this process's memory; it reconnects and resyncs.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from realtime.core.keys import Keys
from realtime.core.metrics import Metrics
from realtime.transport.sockets import LocalSockets

from .subscriber import Subscriber


def user_room(user_id: str) -> str:
    return f"u:{user_id}"


def group_room(room_id: str) -> str:
    return f"r:{room_id}"


KICK = b"!kick "  # a control message on a room channel: "!kick <user_id>" (not a Socket.IO packet)
REPLACED = b"!replaced "  # on a user channel: "!replaced <sid>", a connection its device replaced


class Fanout:
    def __init__(self, redis_url: str, sockets: LocalSockets, keys: Keys, metrics: Metrics) -> None:
        self.sockets = sockets
        self.keys = keys
        self.metrics = metrics
        self.subscriber = Subscriber(redis_url, self.deliver, on_restored=self._restored)
        self.listeners: Counter[str] = Counter()  # channel -> local sockets that need it
        self._channel_prefix = keys.user_channel_prefix().encode()
        self._room_prefix = keys.room_channel("").encode()
        # Set by the namespace: remove a user's sockets here from a group room.
        self.on_kick: Callable[[str, str], Coroutine[Any, Any, None]] | None = None
        # Set by the namespace: end a local connection that its device replaced.
        self.on_replaced: Callable[[str], Coroutine[Any, Any, None]] | None = None
        # Set by the namespace: tell every local socket that events may have been lost.
        self.on_restored: Callable[[], Coroutine[Any, Any, None]] | None = None
        self._restoring: set[asyncio.Task[None]] = set()

    async def listen(self, channel: str) -> None:
        """A local socket needs `channel`; returns once Redis has it subscribed. Every caller
        sends its own SUBSCRIBE (a repeat changes nothing) and waits for its answer: Redis
        answers in order, so a second socket that arrives while the first one's SUBSCRIBE is
        on its way does not go on (to session:ready, to workout:sync) before it is in effect."""
        self.listeners[channel] += 1
        await self.subscriber.subscribe(channel)

    async def unlisten(self, channel: str) -> None:
        self.listeners[channel] -= 1
        if self.listeners[channel] <= 0:
            del self.listeners[channel]
            await self.subscriber.unsubscribe(channel)

    async def join(self, user_id: str) -> None:
        """A device of `user_id` connected here."""
        await self.listen(self.keys.user_channel(user_id))

    async def leave(self, user_id: str) -> None:
        await self.unlisten(self.keys.user_channel(user_id))

    async def run(self) -> None:
        await self.subscriber.run()

    def _restored(self) -> None:
        """The pub/sub connection is back: what was published while it was down is lost."""
        if self.on_restored is not None:
            task = asyncio.get_running_loop().create_task(self.on_restored())
            self._restoring.add(task)
            task.add_done_callback(self._restoring.discard)

    def deliver(self, channel: bytes, data: bytes) -> None:
        if channel.startswith(self._channel_prefix):
            if data.startswith(REPLACED):
                if self.on_replaced is not None:
                    asyncio.get_running_loop().create_task(self.on_replaced(data[len(REPLACED):].decode()))
                return
            room = user_room(channel[len(self._channel_prefix):].decode())
        elif channel.startswith(self._room_prefix):
            room_id = channel[len(self._room_prefix):].decode()
            if data.startswith(KICK):
                # At once, in channel order: nothing published after the kick reaches the user.
                user_id = data[len(KICK):].decode()
                for sid in self.sockets.members(user_room(user_id)):
                    self.sockets.leave(sid, group_room(room_id))
                if self.on_kick is not None:
                    asyncio.get_running_loop().create_task(self.on_kick(room_id, user_id))
                return
            room = group_room(room_id)
        else:
            return
        self.sockets.send(room, data)
        self.metrics.fanout_events.inc()
