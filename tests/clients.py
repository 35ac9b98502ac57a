"""A real python-socketio client, websocket transport only, recording what it receives."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import socketio

from realtime.auth import mint

from .servers import TEST_SECRET


def token(user_id: str, ttl_s: int = 3600, secret: str = TEST_SECRET, **claims: Any) -> str:
    return mint(secret, user_id, ttl_s, **claims)


class Device:
    """One connected device: emits with acks, and keeps every server event in order."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.connect_error: Any = None
        self._arrived = asyncio.Event()

        @self.sio.on("*")
        async def _any(event: str, *args: Any) -> None:
            self.events.append((event, args[0] if args else None))
            self._arrived.set()

        @self.sio.on("connect_error")
        async def _refused(data: Any) -> None:
            self.connect_error = data

    async def connect(self, url: str, auth: Any) -> Device:
        await self.sio.connect(url, auth=auth, transports=["websocket"], wait_timeout=5)
        return self

    async def emit(self, event: str, payload: Any = None, timeout: float = 5) -> Any:
        if payload is None:
            return await self.sio.call(event, timeout=timeout)
        return await self.sio.call(event, payload, timeout=timeout)

    async def wait_for(self, event: str, count: int = 1, timeout: float = 5) -> list[Any]:
        """The first `count` payloads of `event`, waiting until they have all arrived."""
        deadline = time.monotonic() + timeout
        while True:
            found = [data for name, data in self.events if name == event]
            if len(found) >= count:
                return found[:count]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(found)} of {count} {event!r} events within {timeout}s: {self.events}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                pass

    async def close(self) -> None:
        await self.sio.disconnect()
