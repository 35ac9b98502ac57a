"""One simulated device: a Socket.IO client that emits, receives, notices gaps and resyncs."""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Any

from .samples import answered
from .wsclient import SocketIOClient

if TYPE_CHECKING:
    from .user import User

def token(secret: str, user_id: str) -> str:
    import jwt

    now = int(time.time())
    return jwt.encode({"sub": user_id, "iat": now, "exp": now + 6 * 3600}, secret, algorithm="HS256")


class Device:
    def __init__(self, user: User, index: int) -> None:
        self.user = user
        self.index = index
        self.last_seq = 0
        self.skipped: set[int] = set()  # seqs jumped over, not seen since
        self.urls = user.cfg.url.split(",")  # several server processes: a user's devices spread over them
        self.url_index = index % len(self.urls)
        self.up = asyncio.Event()
        self.ready = asyncio.Event()  # session:ready came: the server delivers this user's events from here on
        self.resyncing = False  # after a reconnect, until workout:sync has filled what was missed
        self.live_seqs: list[int] = []  # seqs that arrived live while resyncing
        self.client = self._client()

    def _client(self) -> SocketIOClient:
        auth = {"token": self.user.token, "device_id": f"device-{self.index}"}
        return SocketIOClient(self.urls[self.url_index], auth, self.on_event, time.time_ns)

    def on_event(self, name: str, data: Any, now_ns: int) -> None:
        samples = self.user.samples
        if name == "session:ready":
            self.ready.set()
            return
        if name == "room:activity":
            self.user.room_activity(data, now_ns)
            return
        if not isinstance(data, dict) or data.get("workout_id") != self.user.workout_id:
            return
        seq = data.get("seq")
        if isinstance(seq, int):
            if self.resyncing:  # judged with workout:sync's answer (_resync)
                self.live_seqs.append(seq)
            else:
                if seq in self.skipped:
                    self.skipped.discard(seq)
                    samples.out_of_order += 1
                elif seq <= self.last_seq:
                    samples.duplicates += 1
                elif seq > self.last_seq + 1 and self.last_seq > 0:
                    samples.gaps += 1
                    self.skipped.update(range(max(self.last_seq + 1, seq - 100), seq))
                self.last_seq = max(self.last_seq, seq)
        since_start = (now_ns - self.user.run_start_ns) / 1e9
        if name == "set:completed":
            sent = self.user.sent.get(data["set"]["set_id"])
            if sent is not None and sent[1] != self.index:
                samples.sync_ms.append((since_start, (now_ns - sent[0]) / 1e6))
        elif name == "rest:timer" and data.get("status") == "finished":
            late = (now_ns + self.user.offset_ns) / 1e6 - data["ends_at"]
            samples.timer_late_ms.append((since_start, late))
            samples.timer_fire_late_ms.append(data["server_time"] - data["ends_at"])
            if self.index == 0:
                samples.timers_fired += 1
                self.user.timer_done.set()

    def drop(self) -> None:
        """Lose the connection the way a phone going through a tunnel does: no close handshake."""
        self.client.abort()

    async def keep_connected(self) -> None:
        """Reconnect whenever the connection drops (a storm, a killed server), then resync."""
        cfg = self.user.cfg
        while True:
            await self.client.closed.wait()
            if self.user.finishing:
                return
            dropped_ns = time.time_ns()
            self.up.clear()
            self.resyncing, self.live_seqs = True, []
            self.ready.clear()
            self.user.samples.dropped += 1
            await asyncio.sleep(random.uniform(0, cfg.storm_spread_s))
            if not await self._reconnect():
                return
            self.user.samples.reconnect_ms.append((time.time_ns() - dropped_ns) / 1e6)
            try:  # as the apps do: sync once the server says it is delivering again
                await asyncio.wait_for(self.ready.wait(), 10)
            except TimeoutError:
                self.user.samples.error("session:ready: never came")
            if self.user.room_id is not None:  # presence is per connection: back in the room first
                await self.user.enter_room(self, {"room_id": self.user.room_id})
            self.up.set()
            await self._resync(dropped_ns)

    async def _reconnect(self, give_up_s: float = 30) -> bool:
        deadline = time.monotonic() + give_up_s
        while True:
            self.client = self._client()
            try:
                await self.client.connect()
                return True
            except Exception:  # noqa: BLE001  (refused, reset, timed out: try again, elsewhere if allowed)
                if time.monotonic() > deadline:
                    self.user.samples.error("reconnect: gave up")
                    return False
                if self.user.cfg.failover:
                    self.url_index = (self.url_index + 1) % len(self.urls)
                await asyncio.sleep(0.2)

    async def _resync(self, dropped_ns: int) -> None:
        samples = self.user.samples
        try:
            ack = await self.client.call("workout:sync", {"workout_id": self.user.workout_id,
                                                          "since_seq": self.last_seq}, timeout=10)
        except (TimeoutError, ConnectionError):
            ack = None
        if not answered(samples, "workout:sync", ack):
            self.resyncing = False
            return
        data = ack["data"]
        if "snapshot" in data:  # everything up to its seq, at once
            seen = set(range(self.last_seq + 1, data["seq"] + 1))
        else:
            seen = {e["data"]["seq"] for e in data["events"] if isinstance(e.get("data"), dict)}
        seen.update(self.live_seqs)
        top = max(seen, default=self.last_seq)
        samples.resync_gaps += sum(1 for q in range(self.last_seq + 1, top + 1) if q not in seen)
        self.last_seq = max(self.last_seq, top)
        self.resyncing = False
        samples.resync_ms.append((time.time_ns() - dropped_ns) / 1e6)
