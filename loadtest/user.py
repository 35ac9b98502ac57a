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
        self.acked: list[str] = []  # of the workout under way
        self.completed: list[tuple[str, list[str]]] = []  # (workout_id, acked set ids) of those before
        self.offset_ns = 0  # server clock - our clock
        self.room_id: str | None = None
        self.mates: dict[str, User] = {}  # the room's users (self included), by user_id
        self.timer_done = asyncio.Event()
        self.started = asyncio.Event()  # the workout under way is started (workout:start acked)
        self.finishing = False
        self.devices = [Device(self, i) for i in range(cfg.devices)]

    def _device_up(self, preferred: Device) -> Device:
        return preferred if preferred.up.is_set() else next((d for d in self.devices if d.up.is_set()), preferred)

    async def call(self, device: Device, event: str, payload: dict[str, Any]) -> Any:
        """Send like an app: when the connection drops before the ack, send the same request
        again once a device is back (ids make that safe), and count it as a retry. Under
        --chaos, also when no ack came in time (the connection is given up on, as a frozen
        server's would be) and when the answer is `unavailable` or `rate_limited`."""
        reconnects = self.cfg.storm > 0 or self.cfg.failover
        patient = self.cfg.chaos is not None
        for attempt in range(40 if patient else 5):
            device = self._device_up(device)
            if reconnects and not device.up.is_set():
                try:  # under --chaos a device may not read for 50 s, and the other be reconnecting
                    await asyncio.wait_for(device.up.wait(), 90 if patient else 30)
                except TimeoutError:
                    break
            started = time.time_ns()
            try:
                ack = await device.client.call(event, payload, timeout=10)
            except (TimeoutError, ConnectionError) as exc:
                if not reconnects or (isinstance(exc, TimeoutError) and not patient):
                    self.samples.error(f"{event}: {'ack timeout' if isinstance(exc, TimeoutError) else 'disconnected'}")
                    return None
                if isinstance(exc, TimeoutError):
                    device.drop()
                device.up.clear()  # known dead before its reader has noticed: wait for keep_connected
                self._retried(event)
                continue
            if isinstance(ack, dict) and ack.get("ok") is False:
                error = ack["error"]
                if patient and error.get("code") in ("unavailable", "rate_limited"):
                    await asyncio.sleep((error.get("details") or {}).get("retry_after_ms", 1000) / 1000)
                    self._retried(event)
                    continue
                self.samples.error(f"{event}: {error.get('code')}")
                return None
            if event == "set:complete":
                if attempt == 0:
                    self.samples.ack_ms.append((time.time_ns() - started) / 1e6)
                self.acked.append(payload["set_id"])
            return ack
        self.samples.error(f"{event}: no device came back")
        return None

    def _retried(self, event: str) -> None:
        self.samples.retries += 1
        if event == "set:complete":
            self.samples.sets_in_flight += 1

    async def enter_room(self, device: Device, how: dict[str, str]) -> bool:
        """room:join on one device (presence is per device): how = {invite_code} or {room_id}.
        Under --chaos an `unavailable` is tried again, and a connection lost meanwhile is
        left to keep_connected, which enters again once it is back."""
        for _ in range(30):
            try:
                ack = await device.client.call("room:join", how, timeout=10)
            except (TimeoutError, ConnectionError):
                if self.cfg.chaos is not None:
                    device.drop()
                    return False
                ack = None
            if self.cfg.chaos is not None and isinstance(ack, dict) and not ack.get("ok") \
                    and ack["error"].get("code") == "unavailable":
                await asyncio.sleep(1)
                continue
            break
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
        if not await self.start_workout(self.workout_id):
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
                "workout_id": self.workout_id, "set_id": set_id, **training_set(self.index, len(self.acked))})
            if self.cfg.workout_sets and len(self.acked) >= self.cfg.workout_sets:
                if not await self.next_workout(device):
                    return
            elif ack is not None and self.cfg.rest_s > 0:
                await self.call(device, "rest:start", {"workout_id": self.workout_id, "duration_s": self.cfg.rest_s})
            next_at += period

    async def start_workout(self, workout_id: str) -> bool:
        start = {"workout_id": workout_id, "plan": PLAN}
        if self.room_id is not None:
            start["room_id"] = self.room_id
        if await self.call(self.devices[0], "workout:start", start) is None:
            return False
        self.started.set()
        return True

    async def next_workout(self, device: Device) -> bool:
        """After the workout's last set (--workout-sets), as people train: complete it (stored
        in Postgres) and start the next one, whose seqs begin again at 1."""
        if await self.call(device, "workout:complete", {"workout_id": self.workout_id}) is None:
            return False
        self.completed.append((self.workout_id, self.acked))
        self.started.clear()  # no workout:sync of the next one before it exists (Device._resync)
        self.workout_id, self.acked = str(uuid.uuid4()), []
        for each in self.devices:
            each.new_workout()
        return await self.start_workout(self.workout_id)

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
        if self.cfg.chaos is not None:  # checked and completed by invariants.check
            await asyncio.gather(*(d.client.close() for d in self.devices), return_exceptions=True)
            return
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
