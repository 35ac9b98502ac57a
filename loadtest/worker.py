"""One load-generating process: a slice of the users, each with D devices, as the apps behave.

Every user (user.py) starts a workout with a plan (`PLAN`); then every `period` seconds
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
from multiprocessing.queues import Queue
from typing import Any

from realtime.core.loop_lag import lateness

from .config import Config
from .device import Device
from .invariants import check
from .samples import Samples
from .user import User

STALL_PROBE_S = 0.01  # the generator times a sleep this long to find its own stalls
FAULTY_SHARE = 0.1  # --chaos: the share of a worker's devices that each device fault strikes

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

    async def device_faults(plan: list[tuple[float, str]]) -> None:
        """A share of the devices drops its connection, or stops reading it for up to 50 s
        (ending before the quiet end of the run), at each time of the plan."""
        end = max(at for at, _ in plan)
        for at, kind in plan:
            await asyncio.sleep(max(0.0, begin + at - time.monotonic()))
            devices = [d for u in users for d in u.devices if d.up.is_set()]
            for device in random.sample(devices, round(len(devices) * FAULTY_SHARE)):
                if kind == "drop":
                    device.drop()
                else:
                    background.append(asyncio.create_task(device.stop_reading(
                        min(random.uniform(5, 50), end - at + 1))))

    background = [asyncio.create_task(report()), asyncio.create_task(watch_loop())]
    if cfg.storm > 0 or cfg.failover:
        background += [asyncio.create_task(d.keep_connected()) for u in users for d in u.devices]
    if cfg.storm > 0:
        background.append(asyncio.create_task(storm()))
    if cfg.chaos:
        background.append(asyncio.create_task(device_faults(cfg.chaos)))
    await asyncio.gather(*(
        u.run(begin - arrival + arrival * i / max(1, count), begin + period * i / max(1, count), period, deadline)
        for i, u in enumerate(users)
    ))
    # Let the last timers fire, and every worker finish measuring, before cleaning up.
    await asyncio.sleep(cfg.rest_s + 3)
    if cfg.chaos is not None:
        await check(users, cfg)
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
