"""One simulated user: a workout from a plan, sets in turn from one of their devices, rest timers,
rooms; at the end, their history read back to find acked sets lost or logged twice."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from typing import Any

from .config import Config
from .device import Device, token
from .samples import Samples, answered

EXERCISES = ("squat", "bench", "row", "press", "deadlift")
REPS = (10, 8, 8, 6)
# Started from a routine, as the apps do: the plan names what the user will train.
PLAN = [{"exercise_id": exercise, "sets": len(REPS)} for exercise in EXERCISES]


def training_set(user: int, n: int) -> dict[str, Any]:
    """User number `user`'s n-th set of a workout, as people train: exercises in turn, four
    sets each at one weight, reps falling (10, 8, 8, 6). A new user's first set of an
    exercise is a record (pr:achieved, four records); the other three beat nothing."""
    exercise = n // len(REPS) % len(EXERCISES)
    weight = 40 + 10 * exercise + 2.5 * (user % 20)
    return {"exercise_id": EXERCISES[exercise], "weight_kg": weight, "reps": REPS[n % len(REPS)]}


class User:
    def __init__(self, cfg: Config, index: int, samples: Samples, run_start_ns: int) -> None:
        self.cfg = cfg
        self.index = index
        self.user_id = f"load-{cfg.run_id}-{index}"
        self.token = token(cfg.secret, self.user_id)
        self.samples = samples
        self.run_start_ns = run_start_ns
        self.workout_id = str(uuid.uuid4())
        self.sent: dict[str, tuple[int, int]] = {}  # set_id -> (emit time ns, device index)
        self.acked: list[str] = []
        self.offset_ns = 0  # server clock - our clock
        self.room_id: str | None = None
        self.mates: dict[str, User] = {}  # the room's users (self included), by user_id
        self.timer_done = asyncio.Event()
        self.finishing = False
        self.devices = [Device(self, i) for i in range(cfg.devices)]

    def _device_up(self, preferred: Device) -> Device:
        return preferred if preferred.up.is_set() else next((d for d in self.devices if d.up.is_set()), preferred)

    async def call(self, device: Device, event: str, payload: dict[str, Any]) -> Any:
        """Send like an app: when the connection drops before the ack, send the same request
        again once a device is back (ids make that safe), and count it as a retry."""
        reconnects = self.cfg.storm > 0 or self.cfg.failover
        for attempt in range(5):
            device = self._device_up(device)
            if reconnects and not device.up.is_set():
                try:
                    await asyncio.wait_for(device.up.wait(), 30)
                except TimeoutError:
                    break
            started = time.time_ns()
            try:
                ack = await device.client.call(event, payload, timeout=10)
            except TimeoutError:
                self.samples.error(f"{event}: ack timeout")
                return None
            except ConnectionError:
                if not reconnects:
                    self.samples.error(f"{event}: disconnected")
                    return None
                device.up.clear()  # known dead before its reader has noticed: wait for keep_connected
                self.samples.retries += 1
                continue
            if isinstance(ack, dict) and ack.get("ok") is False:
                self.samples.error(f"{event}: {ack['error'].get('code')}")
                return None
            if event == "set:complete":
                if attempt == 0:
                    self.samples.ack_ms.append((time.time_ns() - started) / 1e6)
                self.acked.append(payload["set_id"])
            return ack
        self.samples.error(f"{event}: no device came back")
        return None

    async def enter_room(self, device: Device, how: dict[str, str]) -> bool:
        """room:join on one device (presence is per device): how = {invite_code} or {room_id}."""
        try:
            ack = await device.client.call("room:join", how, timeout=10)
        except (TimeoutError, ConnectionError):
            ack = None
        return answered(self.samples, "room:join", ack)

    def room_activity(self, data: Any, now_ns: int) -> None:
        if not (isinstance(data, dict) and data.get("type") == "set_completed"):
            return
        mate = self.mates.get(str(data.get("user_id")))
        if mate is None or mate is self:
            return
        sent = mate.sent.get(data["data"]["set"]["set_id"])
        if sent is not None:
            self.samples.room_ms.append((now_ns - sent[0]) / 1e6)

    async def sync_clock(self, tries: int = 5) -> None:
        """server clock - ours, from the time:sync with the shortest round trip (NTP's rule)."""
        best_rtt = None
        for _ in range(tries):
            before = time.time_ns()
            ack = await self.call(self.devices[0], "time:sync", {})
            after = time.time_ns()
            if ack and (best_rtt is None or after - before < best_rtt):
                best_rtt = after - before
                self.offset_ns = ack["data"]["server_time"] * 1_000_000 - (before + after) // 2

    async def run(self, arrive_at: float, first_slot: float, period: float, deadline: float) -> None:
        if self.cfg.idle:
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            return
        # Users arrive spread out, as they would, not all in one instant.
        await asyncio.sleep(max(0.0, arrive_at - time.monotonic()))
        await self.sync_clock()
        start = {"workout_id": self.workout_id, "plan": PLAN}
        if self.room_id is not None:
            start["room_id"] = self.room_id
        if await self.call(self.devices[0], "workout:start", start) is None:
            return
        next_at = first_slot
        n = 0
        while True:
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.monotonic() >= deadline:
                break
            device = self.devices[n % len(self.devices)]
            n += 1
            if self.cfg.timers_only:
                self.timer_done.clear()
                duration = random.uniform(2.0, 5.0)
                await self.call(device, "rest:start", {"workout_id": self.workout_id, "duration_s": duration})
                try:
                    await asyncio.wait_for(self.timer_done.wait(), duration + 10)
                except TimeoutError:
                    self.samples.error("rest:timer finished never came")
                next_at = time.monotonic()
                continue
            set_id = str(uuid.uuid4())
            self.sent[set_id] = (time.time_ns(), device.index)
            self.samples.sets_sent += 1
            ack = await self.call(device, "set:complete", {
                "workout_id": self.workout_id, "set_id": set_id, **training_set(self.index, n - 1)})
            if ack is not None and self.cfg.rest_s > 0:
                await self.call(device, "rest:start", {"workout_id": self.workout_id, "duration_s": self.cfg.rest_s})
            next_at += period

    async def verify(self) -> None:
        """Every acked set is in the workout's history exactly once (workout:sync from 0).
        A server without workout:sync (the reference peer) is not checked."""
        if self.cfg.idle or not self.acked:
            return
        device = self._device_up(self.devices[0])
        try:
            ack = await device.client.call("workout:sync", {"workout_id": self.workout_id, "since_seq": 0},
                                           timeout=10)
        except (TimeoutError, ConnectionError):
            return
        if not (isinstance(ack, dict) and ack.get("ok")):
            return
        data = ack["data"]
        if "snapshot" in data:
            logged = [s["set_id"] for s in data["snapshot"]["sets"]]
        else:
            logged = [e["data"]["set"]["set_id"] for e in data["events"] if e["event"] == "set:completed"]
        counts = Counter(logged)
        self.samples.history_checked += 1
        self.samples.acked_sets += len(self.acked)
        self.samples.lost_sets += sum(1 for set_id in set(self.acked) if set_id not in counts)
        self.samples.duplicated_sets += sum(1 for n in counts.values() if n > 1)

    async def finish(self) -> None:
        self.finishing = True
        await self.verify()
        # The reference peer has no discard; an error ack there is expected and not counted.
        try:
            if self.cfg.idle:
                raise ConnectionError  # no workout to discard
            await self._device_up(self.devices[0]).client.call("workout:discard", {"workout_id": self.workout_id},
                                                               timeout=10)
        except (TimeoutError, ConnectionError):
            pass
        await asyncio.gather(*(d.client.close() for d in self.devices), return_exceptions=True)
