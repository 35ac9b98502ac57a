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
        self.urls = user.cfg.url.split(",")  # several server processes: a user's devices spread over them
        self.url_index = (user.index + index) % len(self.urls)
        self.up = asyncio.Event()
        self.ready = asyncio.Event()  # session:ready came: the server delivers this user's events from here on
        self.resyncing = False  # after a reconnect, until workout:sync has filled what was missed
        self.live_seqs: list[int] = []  # seqs that arrived live while resyncing
        self.seen: set[int] = set()  # every seq this device has had, live or by workout:sync (--chaos)
        self._repairs: set[asyncio.Task[None]] = set()
        self.client = self._client()

    def _client(self) -> SocketIOClient:
        auth = {"token": self.user.token, "device_id": f"device-{self.index}"}
        return SocketIOClient(self.urls[self.url_index], auth, self.on_event, time.time_ns)

    def on_event(self, name: str, data: Any, now_ns: int) -> None:
        samples = self.user.samples
        if name == "session:ready":
            if self.ready.is_set():  # again on a live connection: the server may have missed events for it
                self._repair(rejoin=True)
            self.ready.set()
            return
        if name == "room:activity":
            self.user.room_activity(data, now_ns)
            return
        if not isinstance(data, dict) or data.get("workout_id") != self.user.workout_id:
            return
        seq = data.get("seq")
        if isinstance(seq, int):
            self.seen.add(seq)
            if self.resyncing:  # judged with workout:sync's answer (_resync)
                if self.live_seqs and seq < self.live_seqs[-1]:
                    samples.out_of_order += 1
                self.live_seqs.append(seq)
            elif seq <= self.last_seq:
                samples.duplicates += 1
            elif seq > self.last_seq + 1:  # every device is connected before its user's workout starts
                samples.gaps += 1  # as the protocol says: workout:sync from the last seq applied
                self._repair()
                self.live_seqs.append(seq)
            else:
                self.last_seq = seq
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

    def _repair(self, rejoin: bool = False) -> None:
        """workout:sync from the last seq applied, while the connection stays (and room:join
        again first when `rejoin`: presence diffs may have been missed too)."""
        if self.resyncing:
            return
        self.resyncing, self.live_seqs = True, []

        async def repair() -> None:
            if rejoin and self.user.room_id is not None:
                await self.user.enter_room(self, {"room_id": self.user.room_id})
            await self._resync(None)

        task = asyncio.get_running_loop().create_task(repair())
        self._repairs.add(task)
        task.add_done_callback(self._repairs.discard)

    def new_workout(self) -> None:
        """The user's next workout: its seqs begin at 1; a repair of the last one is moot."""
        for repair in list(self._repairs):
            repair.cancel()
        self.last_seq, self.seen, self.resyncing, self.live_seqs = 0, set(), False, []

    def drop(self) -> None:
        """Lose the connection the way a phone going through a tunnel does: no close handshake."""
        self.client.abort()

    async def stop_reading(self, seconds: float) -> None:
        """Stop reading the connection for a while, as an app the phone has put to sleep:
        the server's writes back up; it sends nothing meanwhile. Then read again (what
        waited arrives), unless the connection was given up on meanwhile."""
        client = self.client
        if client.transport is None or client.closed.is_set() or not self.up.is_set():
            return
        self.up.clear()
        client.transport.pause_reading()
        await asyncio.sleep(seconds)
        if client is self.client and not client.closed.is_set():
            client.transport.resume_reading()
            self.up.set()

    async def keep_connected(self) -> None:
        """Reconnect whenever the connection drops (a storm, a killed server), then resync."""
        cfg = self.user.cfg
        dropped_ns = None
        while True:
            await self.client.closed.wait()
            if self.user.finishing:
                return
            dropped_ns = dropped_ns or time.time_ns()
            for repair in list(self._repairs):  # done again once the connection is back
                repair.cancel()
            self.up.clear()
            self.resyncing, self.live_seqs = True, []
            self.ready.clear()
            self.user.samples.dropped += 1
            await asyncio.sleep(random.uniform(0, cfg.storm_spread_s))
            if not await self._reconnect():
                return
            try:  # as the apps do: sync once the server says it is delivering again
                await asyncio.wait_for(self.ready.wait(), 10)
            except TimeoutError:
                if cfg.chaos is None:
                    self.user.samples.error("session:ready: never came")
                else:  # connected to a process just frozen: give up on it and go elsewhere
                    self.drop()
                    continue
            self.user.samples.reconnect_ms.append((time.time_ns() - dropped_ns) / 1e6)
            if self.user.room_id is not None:  # presence is per connection: back in the room first
                await self.user.enter_room(self, {"room_id": self.user.room_id})
            self.up.set()
            await self._resync(dropped_ns)
            dropped_ns = None

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

    async def _resync(self, dropped_ns: int | None) -> None:
        """workout:sync from the last seq applied; `dropped_ns`: when the connection dropped
        (None: a gap repaired on a live connection), for the time to resync."""
        samples = self.user.samples
        await self.user.started.wait()
        workout_id = self.user.workout_id
        payload = {"workout_id": workout_id, "since_seq": self.last_seq}
        if self.user.cfg.chaos is None:
            try:
                ack = await self.client.call("workout:sync", payload, timeout=10)
            except (TimeoutError, ConnectionError):
                ack = None
            ok = answered(samples, "workout:sync", ack)
        else:  # a fault may be under way: sent again until answered, as an app does (it counts errors)
            ack = await self.user.call(self, "workout:sync", payload)
            ok = ack is not None
        if not ok or workout_id != self.user.workout_id:  # failed, or about a workout now over
            self.resyncing = False
            return
        data = ack["data"]
        if "snapshot" in data:  # everything up to its seq, at once
            seen = set(range(self.last_seq + 1, data["seq"] + 1))
        else:
            seen = {e["data"]["seq"] for e in data["events"] if isinstance(e.get("data"), dict)}
        self.seen.update(seen)
        seen.update(self.live_seqs)
        top = max(seen, default=self.last_seq)
        samples.resync_gaps += sum(1 for q in range(self.last_seq + 1, top + 1) if q not in seen)
        self.last_seq = max(self.last_seq, top)
        self.resyncing = False
        if dropped_ns is not None:
            samples.resync_ms.append((time.time_ns() - dropped_ns) / 1e6)
