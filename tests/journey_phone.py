"""A device of a journey's user (tests/test_journeys.py): its connection and every workout event it applied."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from .clients import Device, check, token


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Env:
    loop: asyncio.AbstractEventLoop
    urls: list[str]
    http: httpx.AsyncClient


class Phone:
    """One device of a user: its connection, and every workout event it has applied (live or synced)."""

    def __init__(self, user: str, name: str) -> None:
        self.user, self.name = user, name
        self.dev: Device | None = None
        self.seen = 0  # events of this connection already absorbed
        self.stream: dict[str, list[int]] = {}  # this connection's live seqs per workout
        self.known: dict[str, dict[int, tuple[str, dict]]] = {}  # workout -> seq -> (event, payload)
        self.activity: list[dict] = []  # room:activity received, every connection
        self.expected: Counter = Counter()  # room:activity that must have arrived

    async def connect(self, url: str) -> dict:
        self.dev = await Device().connect(url, {"token": token(self.user), "device_id": self.name})
        self.seen, self.stream = 0, {}
        (ready,) = await self.dev.wait_for("session:ready")
        assert (ready["user_id"], ready["device_id"]) == (self.user, self.name), ready
        return ready

    def absorb(self) -> None:
        assert self.dev is not None
        for name, data in self.dev.events[self.seen:]:
            check(name, data)  # every event decodes strictly with its Struct
            if name == "room:activity":
                self.activity.append(data)
            elif "seq" in data:  # a connection gets each event of a workout once, in seq order, none skipped
                stream = self.stream.setdefault(data["workout_id"], [])
                assert not stream or data["seq"] == stream[-1] + 1, f"{self.name}: {data['seq']} after {stream}"
                stream.append(data["seq"])
                self.learn(name, data)
        self.seen = len(self.dev.events)

    def learn(self, name: str, data: dict) -> None:
        known = self.known.setdefault(data["workout_id"], {})
        assert known.get(data["seq"], (name, data)) == (name, data), (known[data["seq"]], name, data)
        known[data["seq"]] = (name, data)

    async def until(self, found: Any, what: str, timeout: float = 5) -> Any:
        assert self.dev is not None
        return await self.dev._until(lambda: (self.absorb(), found())[1], timeout, lambda: f"{self.name}: {what}")

    async def has(self, wid: str, seq: int) -> tuple[str, dict]:
        """The event at `seq` of the workout, once this device has it (live, or from a sync)."""
        return await self.until(lambda: self.known.get(wid, {}).get(seq), f"no {seq} in {self.known.get(wid)}")

    async def fired(self, wid: str, after: int) -> dict:
        """The rest:timer finished after seq `after`, once this device has it."""
        return await self.until(lambda: next((d for q, (n, d) in sorted(self.known.get(wid, {}).items()) if q > after
                                              and n == "rest:timer" and d["status"] == "finished"), None),
                                f"no finished timer after {after}")

    def applied(self, wid: str) -> int:
        """The last seq of the workout this device applied with none missing before it."""
        known, n = self.known.get(wid, {}), 0
        while n + 1 in known:
            n += 1
        return n
