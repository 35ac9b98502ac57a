"""A real python-socketio client, websocket transport only, recording what it receives."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import msgspec
import socketio

from realtime.core import protocol
from realtime.core.auth import mint

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

    async def _until(self, found: Callable[[], Any], timeout: float, what: Callable[[], str]) -> Any:
        """Wait for events until `found()` returns something; TimeoutError says `what()` was seen."""
        deadline = time.monotonic() + timeout
        while (result := found()) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"within {timeout}s: {what()}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
        return result

    async def wait_for(self, event: str, count: int = 1, timeout: float = 5) -> list[Any]:
        """The first `count` payloads of `event`, waiting until they have all arrived."""
        def found() -> list[Any] | None:
            payloads = self.named(event)
            return payloads[:count] if len(payloads) >= count else None

        return await self._until(
            found, timeout, lambda: f"{len(self.named(event))} of {count} {event!r}: {self.events}")

    async def wait_seq(self, workout_id: str, seq: int, timeout: float = 5) -> tuple[str, Any]:
        """The event of this workout with this seq, once it has arrived."""
        def found() -> tuple[str, Any] | None:
            return next(((n, d) for n, d in self.workout_events(workout_id) if d["seq"] == seq), None)

        return await self._until(found, timeout, lambda: f"no seq {seq} of {workout_id}: {self.seqs(workout_id)}")

    def named(self, event: str) -> list[Any]:
        return [data for name, data in self.events if name == event]

    def workout_events(self, workout_id: str) -> list[tuple[str, Any]]:
        """This workout's events in arrival order, each checked against its Struct."""
        found = []
        for name, data in self.events:
            if isinstance(data, dict) and data.get("workout_id") == workout_id and name in protocol.SERVER_EVENTS:
                check(name, data)
                found.append((name, data))
        return found

    def seqs(self, workout_id: str) -> list[int]:
        return [data["seq"] for _, data in self.workout_events(workout_id)]

    async def close(self) -> None:
        await self.sio.disconnect()


def conforms(data: Any, struct: type[msgspec.Struct]) -> Any:
    """`data` decoded strictly with `struct`, after checking it has no field the Struct (and so
    docs/protocol.md) does not name, and every field it requires."""
    assert isinstance(data, dict), data
    fields = msgspec.structs.fields(struct)
    names = {f.encode_name for f in fields}
    assert set(data) <= names, f"{struct.__name__} has no {sorted(set(data) - names)}: {data}"
    missing = {f.encode_name for f in fields if f.required} - set(data)
    assert not missing, f"{struct.__name__} needs {sorted(missing)}: {data}"
    return msgspec.convert(data, struct, strict=True)


def check(event: str, data: Any) -> Any:
    """Decode a server event strictly with its protocol Struct: the shape is what docs/protocol.md says."""
    return conforms(data, protocol.SERVER_EVENTS[event])


async def ok(device: Device, event: str, payload: Any) -> Any:
    """The data of a successful ack, which has the shape the protocol gives the event's reply."""
    ack = await device.emit(event, payload)
    assert ack["ok"] is True, f"{event} {payload} -> {ack}"
    if event in protocol.CLIENT_EVENTS:
        conforms(ack["data"], protocol.CLIENT_EVENTS[event][1])
    return ack["data"]


async def error(device: Device, event: str, payload: Any) -> dict[str, Any]:
    ack = await device.emit(event, payload)
    assert ack["ok"] is False, f"{event} {payload} -> {ack}"
    assert set(ack) == {"ok", "error"}
    return ack["error"]
