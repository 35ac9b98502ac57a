"""Valkey's cost per live-state script call, alone: what each set costs the Redis side.

    python -m loadtest.scripts                          # workouts as people train them
    python -m loadtest.scripts --shape new-weight       # a new weight every set: every set a record
    python -m loadtest.scripts --instructions --users 100 --runs 1   # instructions, under valgrind

Starts its own Valkey (pinned to --cpus), starts --users workouts through
`LiveState`, then logs --sets sets for each, every set followed by a rest timer
that is due at once, and fires the timers. Each step runs for all users at once
and is measured in Valkey alone, so the figure is Valkey's cost per call
including reading the command and writing the reply, and nothing of the
client's: its CPU time (its INFO's, to the microsecond), which moves with how fast the machine runs
that hour, or with --instructions the instructions it executed (valgrind's
callgrind, which must be installed): the same count on every run of the same
code, so that two versions can be compared on a noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import redis
from redis.asyncio import Redis

from liveset.dev.embedded import EmbeddedRedis
from realtime.core import protocol as p
from realtime.core.keys import Keys
from realtime.core.records import baseline_json
from realtime.live.live_state import LiveState
from realtime.live.script_line import ScriptLine

from .user import training_set


def _new_weight_set(_: int, n: int) -> dict[str, object]:
    return {"exercise_id": "bench", "weight_kg": 60 + n % 40, "reps": 1 + n % 12}


SHAPES = {"training": training_set, "new-weight": _new_weight_set}


def cpu_seconds(url: str) -> Callable[[], float]:
    """Valkey's CPU seconds since the meter was last read, from its INFO (getrusage, to the
    microsecond): /proc counts in 10 ms ticks, too coarse for a step of a few hundred calls."""
    valkey = redis.Redis.from_url(url)
    last = 0.0

    def spent() -> float:
        nonlocal last
        info = valkey.info("cpu")
        now = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        used, last = now - last, now
        return used
    return spent


def instructions(pid: int, folder: Path) -> Callable[[], float]:
    """Instructions Valkey (run under callgrind) executed since the meter was last read."""
    def spent() -> float:
        for old in folder.glob(f"cg.{pid}.*"):
            old.unlink()
        subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "--zero", str(pid)], check=True, capture_output=True)
        totals = [line for dump in folder.glob(f"cg.{pid}.*") for line in dump.read_text().splitlines()
                  if line.startswith("totals:")]
        return float(sum(int(line.split()[1]) for line in totals))
    return spent


async def measure(
    url: str, spent: Callable[[], float], users: int, sets: int, shape: str
) -> tuple[dict[str, float], int]:
    """Valkey's cost (in the meter's unit) per call of each kind, and how many timers fired."""
    async def no_history(_user: str, _exercise: str) -> bytes:
        return baseline_json([])

    redis, line = Redis.from_url(url), ScriptLine(url)
    live = LiveState(redis, line, Keys("bench:"), no_history, log_cap=1000)
    run = uuid.uuid4().hex[:8]
    workouts = {f"{run}-{i}": uuid.uuid4() for i in range(users)}
    await asyncio.gather(*(live.start(u, p.WorkoutStart(workout_id=w)) for u, w in workouts.items()))
    used = {"set_complete": 0.0, "rest_start": 0.0, "timer fired": 0.0}
    fired = 0
    for n in range(sets):
        spent()
        await asyncio.gather(*(live.complete_set(u, p.SetComplete(
            workout_id=w, set_id=uuid.uuid4(), **SHAPES[shape](i, n))) for i, (u, w) in enumerate(workouts.items())))
        used["set_complete"] += spent()
        await asyncio.gather(*(live.start_rest(u, p.RestStart(workout_id=w, duration_s=0.001))
                               for u, w in workouts.items()))
        used["rest_start"] += spent()
        await asyncio.sleep(0.005)
        spent()
        fired += sum(count for _, count, _ in await live.fire_due_timers())
        used["timer fired"] += spent()
    await line.aclose()
    await redis.aclose()
    calls = {"set_complete": users * sets, "rest_start": users * sets, "timer fired": max(fired, 1)}
    return {name: used[name] / calls[name] for name in used}, fired


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.scripts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--sets", type=int, default=20)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="training")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cpus", default="1", help="cores for Valkey")
    parser.add_argument("--instructions", action="store_true",
                        help="count Valkey's instructions (under valgrind's callgrind) instead of its CPU time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="liveset-scripts-") as folder:
        wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/cg.%p"] if args.instructions else []
        with EmbeddedRedis(Path(folder) / "valkey", persist=False, wrapper=wrapper).start() as valkey:
            assert valkey.proc is not None
            os.sched_setaffinity(valkey.proc.pid, [int(c) for c in args.cpus.split(",")])
            meter = (instructions(valkey.proc.pid, Path(folder)) if args.instructions
                     else cpu_seconds(valkey.url))
            for _ in range(args.runs):
                figures, fired = asyncio.run(measure(valkey.url, meter, args.users, args.sets, args.shape))
                unit, scale = ("thousands of instructions", 1e-3) if args.instructions else ("µs of CPU", 1e6)
                print(f"Valkey per call, {unit}: " + ", ".join(f"{k} {v * scale:.1f}" for k, v in figures.items()) +
                      f" ({fired} of {args.users * args.sets} timers fired)", flush=True)

if __name__ == "__main__":
    main()
