"""One load-generating process: a slice of the users, each with D devices, as the apps behave.

Every user starts a workout with a plan (`PLAN`); then every `period` seconds
one of their devices logs a set (five exercises in turn, four sets each:
`training_set`) and starts a rest timer. All devices of a user live in this
process, so one clock times device A's emit against device B's receipt. A device
whose connection drops (a storm, a killed server) reconnects and resyncs with
workout:sync; a call cut by the drop is sent again with the same ids. At the end
each user's history is read back to find acked sets lost or logged twice.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from typing import Any

from realtime.core.loop_lag import lateness

from .wsclient import SocketIOClient

ARRIVAL_S = 2.0  # users arrive over at least this long before the load starts
STALL_PROBE_S = 0.01  # the generator times a sleep this long to find its own stalls


@dataclass
class Config:
    url: str
    secret: str
    users: int
    devices: int
    rate: float  # sets per second, all users together
    rest_s: float
    duration_s: float
    connect_rate: float  # connections per second, all workers together
    timers_only: bool
    label: str
    run_id: str
    idle: bool = False  # connect and hold, nothing else (memory per idle connection)
    storm: float = 0.0  # share of the devices that drop at once, `storm_at` s into the load, and come back
    storm_at: float = 0.0
    storm_spread_s: float = 1.0  # the dropped devices reconnect spread over this long, as apps' jitter does
    failover: bool = False  # a device whose server goes away reconnects to the next URL (kill -9 runs)
    rooms: float = 0.0  # share of the users training together in group rooms
    room_size: int = 5  # users per room

    @property
    def period(self) -> float:
        """Seconds between one user's sets. Timers-only users chain their own timers: it only
        staggers their starts."""
        return self.users / self.rate if self.rate > 0 and not self.timers_only else 2.0

    @property
    def arrival_s(self) -> float:
        """Users arrive (clock sync, workout:start) spread over this long; then the load starts.
        One period, but never so short that every user's arrival is one burst that spills
        into the first seconds measured (1,000 users at 4,000 sets/s: a period is 0.25 s)."""
        return max(self.period, ARRIVAL_S)


@dataclass
class Samples:
    """What one worker measured; merged by the runner."""

    sync_ms: list[tuple[float, float]] = field(default_factory=list)  # (seconds into the run, latency)
    room_ms: list[float] = field(default_factory=list)  # a member's set -> room:activity at another member's device
    ack_ms: list[float] = field(default_factory=list)
    timer_late_ms: list[tuple[float, float]] = field(default_factory=list)
    timer_fire_late_ms: list[float] = field(default_factory=list)  # server_time - ends_at: the firing alone
    connect_ms: list[float] = field(default_factory=list)
    stalls_ms: list[tuple[float, float]] = field(default_factory=list)  # (seconds into the run, ms) of its own loop
    sets_sent: int = 0
    timers_fired: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    gaps: int = 0
    duplicates: int = 0
    out_of_order: int = 0  # arrived after a later seq (each also counted as a gap when skipped)
    connected: int = 0
    dropped: int = 0  # connections lost mid-run (storm or a killed server)
    reconnect_ms: list[float] = field(default_factory=list)  # drop -> connected again
    resync_ms: list[float] = field(default_factory=list)  # drop -> workout:sync answered and applied
    resync_gaps: int = 0  # events missing after a resync
    retries: int = 0  # calls sent again after their connection dropped (same ids: idempotent)
    acked_sets: int = 0
    lost_sets: int = 0  # acked, yet absent from the workout at the end
    duplicated_sets: int = 0  # one set_id logged twice in the workout's history
    history_checked: int = 0  # users whose history could be read back (workout:sync)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def answered(samples: Samples, event: str, ack: Any) -> bool:
    """Whether an ack (None: none came) is a success; if not, counted as an error of `event`."""
    if isinstance(ack, dict) and ack.get("ok"):
        return True
    samples.error(f"{event}: no answer" if ack is None else f"{event}: {ack['error'].get('code')}")
    return False


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


async def _connect_all(users: list[User], per_second: float, samples: Samples) -> None:
    interval = 1.0 / per_second if per_second > 0 else 0
    start = time.monotonic()
    pending = []
    for i, device in enumerate(d for u in users for d in u.devices):
        wait = start + i * interval - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        pending.append(asyncio.create_task(_connect(device, samples)))
    await asyncio.gather(*pending)


async def _form_rooms(users: list[User], cfg: Config) -> None:
    """The first `rooms` share of the users, in groups of `room_size`: one creates the room,
    the others join with its invite code, and every device of each enters it."""
    members = users[:round(len(users) * cfg.rooms)]
    await asyncio.gather(*(_form_room(members[i:i + cfg.room_size]) for i in range(0, len(members), cfg.room_size)))


async def _form_room(group: list[User]) -> None:
    owner = group[0]
    ack = await owner.call(owner.devices[0], "room:create", {"name": f"load {owner.index}"})
    if ack is None:
        return
    room = ack["data"]["room"]
    joined = [owner]
    for user in group[1:]:
        if await user.enter_room(user.devices[0], {"invite_code": room["invite_code"]}):
            joined.append(user)
    for user in joined:
        user.room_id, user.mates = room["room_id"], {u.user_id: u for u in joined}
        for device in user.devices[1:]:
            await user.enter_room(device, {"room_id": room["room_id"]})


async def _connect(device: Device, samples: Samples) -> None:
    started = time.time_ns()
    try:
        await device.client.connect()
    except Exception as exc:  # noqa: BLE001  (any failure to connect is a measured error)
        samples.error(f"connect: {type(exc).__name__}")
        return
    samples.connect_ms.append((time.time_ns() - started) / 1e6)
    samples.connected += 1
    device.up.set()


async def _run(cfg: Config, first: int, count: int, workers: int, progress: Queue[Any] | None,
               go: Any = None) -> Samples:
    samples = Samples()
    run_start_ns = time.time_ns()
    users = [User(cfg, first + i, samples, run_start_ns) for i in range(count)]
    await _connect_all(users, cfg.connect_rate / workers, samples)
    if cfg.rooms > 0:
        await _form_rooms(users, cfg)
    if progress is not None:
        progress.put(("connected", samples.connected))
    if go is not None:  # every worker has connected: the load starts together, after the connect storm
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
    # The generator's own collections would stop its loop for up to 250 ms and be
    # measured as the server's latency: none while measuring (the run is bounded).
    gc.collect()
    gc.freeze()
    gc.disable()
    period, arrival = cfg.period, cfg.arrival_s
    begin = time.monotonic() + arrival
    deadline = begin + cfg.duration_s

    async def report() -> None:
        while progress is not None:
            await asyncio.sleep(2)
            late = sorted(x for _, x in samples.sync_ms[-2000:])
            p99 = late[int(len(late) * 0.99) - 1] if late else None
            progress.put(("progress", samples.sets_sent, samples.timers_fired, p99, sum(samples.errors.values())))

    async def watch_loop() -> None:
        """This worker's own stalls of 10 ms or more while the load runs: a latency spike it
        measured is the server's only if the generator was not stalled then."""
        await asyncio.sleep(max(0.0, begin - time.monotonic()))
        async for late in lateness(STALL_PROBE_S):
            if time.monotonic() >= deadline:
                return
            if late >= 0.010:
                samples.stalls_ms.append(((time.time_ns() - run_start_ns) / 1e9, late * 1000))

    async def storm() -> None:
        await asyncio.sleep(max(0.0, begin + cfg.storm_at - time.monotonic()))
        devices = [d for u in users for d in u.devices if d.up.is_set()]
        for device in random.sample(devices, round(len(devices) * cfg.storm)):
            device.drop()

    background = [asyncio.create_task(report()), asyncio.create_task(watch_loop())]
    if cfg.storm > 0 or cfg.failover:
        background += [asyncio.create_task(d.keep_connected()) for u in users for d in u.devices]
    if cfg.storm > 0:
        background.append(asyncio.create_task(storm()))
    await asyncio.gather(*(
        u.run(begin - arrival + arrival * i / max(1, count), begin + period * i / max(1, count), period, deadline)
        for i, u in enumerate(users)
    ))
    # Let the last timers fire, and every worker finish measuring, before cleaning up.
    await asyncio.sleep(cfg.rest_s + 3)
    await asyncio.gather(*(u.finish() for u in users))
    for task in background:
        task.cancel()
    return samples


def main(cfg: Config, first: int, count: int, workers: int, cpus: list[int] | None, results: Queue[Any],
         progress: Queue[Any], go: Any) -> None:
    """Entry point of a worker process."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    import uvloop

    results.put(uvloop.run(_run(cfg, first, count, workers, progress, go)))
