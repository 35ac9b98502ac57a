"""The noisy neighbour: one user on every device the server allows, each sending as fast as
its connection's rate limit lets it, the costliest way a client can within the limits.

Sets of one exercise, interleaved across devices, each with a `completed_at` drawn from the
workout's past (so nearly every set lands before the last one and the server cannot weigh it
alone), edits of earlier sets, and `workout:sync` from seq 0 (the longest replay there is).
It runs in its own process beside the ordinary users (worker.py) and reports what it was
answered; the ordinary users' latencies, with and without it, are the measure.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import resource
import time
import uuid
from collections import Counter
from multiprocessing.queues import Queue
from typing import Any

from .config import Config
from .device import token
from .measure import percentiles
from .wsclient import SocketIOClient

DEVICES = 10  # the server's default MAX_DEVICES_PER_USER
PER_DEVICE_RATE = 18.0  # events per second per device: just under the default 20/s limit


async def _device(client: SocketIOClient, workout_id: str, logged: list[str], started_ms: int,
                  deadline: float, answers: Counter[str], ack_ms: list[float]) -> None:
    interval = 1.0 / PER_DEVICE_RATE
    next_at = time.monotonic()
    for n in itertools.count():
        next_at += interval
        if time.monotonic() >= deadline:
            return
        now_ms = int(time.time() * 1000)
        if n % 5 == 4:
            event, payload = "workout:sync", {"workout_id": workout_id, "since_seq": 0}
        elif n % 5 == 3 and logged:
            event, payload = "set:update", {"workout_id": workout_id, "set_id": random.choice(logged),
                                            "reps": random.randint(1, 20), "weight_kg": random.randint(20, 200)}
        else:
            set_id = str(uuid.uuid4())
            event, payload = "set:complete", {
                "workout_id": workout_id, "set_id": set_id, "exercise_id": "squat",
                "weight_kg": random.randint(20, 200), "reps": random.randint(1, 20),
                "completed_at": random.randint(started_ms, now_ms)}
        sent = time.monotonic()
        try:
            ack = await client.call(event, payload, timeout=10)
        except (TimeoutError, ConnectionError) as exc:
            answers[f"{event}: {type(exc).__name__}"] += 1
            return
        ack_ms.append((time.monotonic() - sent) * 1000)
        if isinstance(ack, dict) and ack.get("ok"):
            answers[f"{event}: ok"] += 1
            if event == "set:complete":
                logged.append(payload["set_id"])
        else:
            code = ack["error"].get("code") if isinstance(ack, dict) and "error" in ack else "?"
            answers[f"{event}: {code}"] += 1
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def _run(cfg: Config, go: Any) -> dict[str, Any]:
    user_id = f"noisy-{cfg.run_id}"
    urls = cfg.url.split(",")
    clients = [SocketIOClient(urls[i % len(urls)], {"token": token(cfg.secret, user_id), "device_id": f"noisy-{i}"},
                              lambda *_: None, time.time_ns) for i in range(DEVICES)]
    await asyncio.gather(*(c.connect() for c in clients))
    workout_id = str(uuid.uuid4())
    ack = await clients[0].call("workout:start", {"workout_id": workout_id,
                                                  "plan": [{"exercise_id": "squat", "sets": 100}]})
    if not (isinstance(ack, dict) and ack.get("ok")):
        raise RuntimeError(f"the noisy neighbour's workout:start failed: {ack}")
    started_ms = int(time.time() * 1000)
    await asyncio.get_running_loop().run_in_executor(None, go.wait)
    await asyncio.sleep(cfg.arrival_s)  # the ordinary users' load starts then (worker.py)
    deadline = time.monotonic() + cfg.duration_s
    cpu_before = _cpu_s()
    answers: Counter[str] = Counter()
    ack_ms: list[float] = []
    logged: list[str] = []
    await asyncio.gather(*(_device(c, workout_id, logged, started_ms, deadline, answers, ack_ms) for c in clients))
    cpu_percent = round((_cpu_s() - cpu_before) / cfg.duration_s * 100, 1)
    await clients[0].call("workout:discard", {"workout_id": workout_id})
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    return {"answers": dict(sorted(answers.items())), "ack_latency_ms": percentiles(ack_ms),
            "events_per_s": round(sum(answers.values()) / cfg.duration_s, 1),
            # the neighbour's own process shares the generator's core: what it takes from it
            "own_cpu_percent": cpu_percent}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(cfg: Config, cpus: list[int] | None, results: Queue[Any], go: Any) -> None:
    """Entry point of the noisy neighbour's process: it connects with the ordinary users' workers
    and sends from when their load starts, for as long."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    import uvloop

    results.put(("noisy", uvloop.run(_run(cfg, go))))
