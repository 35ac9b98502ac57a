"""Valkey's CPU per live-state script call, alone: what each set costs the Redis side.

    python -m loadtest.scripts                          # workouts as people train them
    python -m loadtest.scripts --shape new-weight       # a new weight every set: every set a record

Starts its own Valkey (pinned to --cpus), starts --users workouts through
`LiveState`, then logs --sets sets for each, every set followed by a rest timer
that is due at once, and fires the timers. Each step runs for all users at once
and is timed by Valkey's own CPU (from /proc), so the figure is Valkey's cost
per call including reading the command and writing the reply, and nothing of
the client's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import uuid
from pathlib import Path

import psutil
from redis.asyncio import Redis

from realtime import protocol as p
from realtime.embedded import EmbeddedRedis
from realtime.keys import Keys
from realtime.live_state import LiveState
from realtime.records import baseline_json
from realtime.script_line import ScriptLine

from .worker import training_set


def _new_weight_set(_: int, n: int) -> dict[str, object]:
    return {"exercise_id": "bench", "weight_kg": 60 + n % 40, "reps": 1 + n % 12}


SHAPES = {"training": training_set, "new-weight": _new_weight_set}


async def measure(url: str, valkey: psutil.Process, users: int, sets: int, shape: str) -> tuple[dict[str, float], int]:
    """Valkey's µs of CPU per call of each kind, and how many timers fired."""
    def cpu() -> float:
        times = valkey.cpu_times()
        return times.user + times.system

    async def no_history(_user: str, _exercise: str) -> bytes:
        return baseline_json([])

    redis, line = Redis.from_url(url), ScriptLine(url)
    live = LiveState(redis, line, Keys("bench:"), no_history, log_cap=1000)
    run = uuid.uuid4().hex[:8]
    workouts = {f"{run}-{i}": uuid.uuid4() for i in range(users)}
    await asyncio.gather(*(live.start(u, p.WorkoutStart(workout_id=w)) for u, w in workouts.items()))
    spent = {"set_complete": 0.0, "rest_start": 0.0, "timer fired": 0.0}
    fired = 0
    for n in range(sets):
        before = cpu()
        await asyncio.gather(*(live.complete_set(u, p.SetComplete(
            workout_id=w, set_id=uuid.uuid4(), **SHAPES[shape](i, n))) for i, (u, w) in enumerate(workouts.items())))
        middle = cpu()
        await asyncio.gather(*(live.start_rest(u, p.RestStart(workout_id=w, duration_s=0.001))
                               for u, w in workouts.items()))
        after = cpu()
        await asyncio.sleep(0.005)
        fired += sum(count for _, count, _ in await live.fire_due_timers())
        spent["set_complete"] += middle - before
        spent["rest_start"] += after - middle
        spent["timer fired"] += cpu() - after
    await line.aclose()
    await redis.aclose()
    calls = {"set_complete": users * sets, "rest_start": users * sets, "timer fired": max(fired, 1)}
    return {name: round(spent[name] / calls[name] * 1e6, 1) for name in spent}, fired


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.scripts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--sets", type=int, default=20)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="training")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cpus", default="1", help="cores for Valkey")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="liveset-scripts-") as folder, \
            EmbeddedRedis(Path(folder), persist=False).start() as valkey:
        assert valkey.proc is not None
        os.sched_setaffinity(valkey.proc.pid, [int(c) for c in args.cpus.split(",")])
        for _ in range(args.runs):
            figures, fired = asyncio.run(measure(valkey.url, psutil.Process(valkey.proc.pid), args.users,
                                                 args.sets, args.shape))
            print("Valkey CPU per call, µs: " + ", ".join(f"{k} {v}" for k, v in figures.items()) +
                  f" ({fired} of {args.users * args.sets} timers fired)", flush=True)


if __name__ == "__main__":
    main()
