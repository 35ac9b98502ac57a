"""Benchmarks of the Postgres side: storing completed workouts, and reading history back.

    python -m loadtest.storage store --workouts 30000 --clients 64 [--pin]
        completed workouts (20 sets each) stored per second: the one statement of
        workout:complete (realtime/live/persist.py: Writer; the workout, its sets and its
        records), run by several clients at once on the embedded PostgreSQL.
        The writer and PostgreSQL share the machine's cores as a deployment on it
        would; --pin confines the writer to core 0 and PostgreSQL to core 1.

    python -m loadtest.storage read --users 10000 --sets 1000000 --seconds 20 --clients 2
        p50/p99 of GET /api/v1/workouts and GET /api/v1/exercises/{id}/history through a
        liveset process, over a database seeded with that many sets.

PostgreSQL runs with fsync on here (durable, as in production). `read` pins the
servers like the socket benchmarks: liveset on core 0, PostgreSQL on core 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid

import asyncpg
import httpx

from db.pool import create_pool
from realtime.core import protocol as p
from realtime.core.auth import mint
from realtime.live import persist

from .__main__ import RESULTS, percentiles
from .stack import SECRET, Stack


def _snapshot(sets: int) -> p.WorkoutSnapshot:
    now = int(time.time() * 1000)
    return p.WorkoutSnapshot(
        workout_id=str(uuid.uuid4()), name="bench", status="completing", started_at=now - 3_600_000, paused_at=None,
        ended_at=now, room_id=None, plan=None, seq=sets + 1,
        sets=[p.SetRecord(set_id=str(uuid.uuid4()), exercise_id=f"ex{i % 5}", set_type="normal",
                          weight_kg=40 + i, reps=5 + i % 5, duration_s=None, distance_m=None, rpe=8.0, notes=None,
                          completed_at=now - 60_000 * (sets - i)) for i in range(sets)],
        stats=p.Stats(set_count=sets, total_volume_kg=1000.0, duration_s=3600, avg_rpe=8.0),
        rest=None, records=[],
    )


async def store(database_url: str, workouts: int, clients: int, sets: int) -> dict[str, object]:
    pool = await create_pool(database_url, min_size=2, max_size=2)
    writer = persist.Writer(pool)
    snapshots = [_snapshot(sets) for _ in range(workouts)]
    for s in snapshots[: workouts // 2]:  # half of them raise records, as first workouts do
        s.records.append(p.Record(type="max_weight", value=s.sets[-1].weight_kg or 0, previous=None,
                                  set_id=s.sets[-1].set_id))
    queue: asyncio.Queue[p.WorkoutSnapshot] = asyncio.Queue()
    for s in snapshots:
        queue.put_nowait(s)
    latencies: list[float] = []

    async def client() -> None:
        while not queue.empty():
            snapshot = queue.get_nowait()
            started = time.perf_counter()
            await writer.store(persist.rows_of(f"user-{random.randrange(10_000)}", snapshot, None))
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return {"workouts": workouts, "sets_each": sets, "clients": clients, "seconds": round(elapsed, 2),
            "workouts_per_s": round(workouts / elapsed, 1), "transaction_ms": percentiles(latencies)}


SEED = """
INSERT INTO workouts (user_id, id, name, started_at, completed_at, duration_s, total_volume_kg, set_count,
                      exercise_count)
SELECT 'user-' || u, md5('w' || u || '-' || w)::uuid, 'seeded',
       now() - make_interval(days => w) - interval '1 hour', now() - make_interval(days => w), 3600, 5000, $3, 5
FROM generate_series(1, $1) u, generate_series(1, $2) w;

INSERT INTO workout_sets (user_id, workout_id, id, position, exercise_id, weight_kg, reps, completed_at)
SELECT 'user-' || u, md5('w' || u || '-' || w)::uuid, md5('s' || u || '-' || w || '-' || s)::uuid, s,
       'ex' || (s % 5), 40 + s, 5 + s % 5, now() - make_interval(days => w) - make_interval(mins => $3 - s)
FROM generate_series(1, $1) u, generate_series(1, $2) w, generate_series(0, $3 - 1) s;

ANALYZE workouts;
ANALYZE workout_sets;
"""


async def read(url: str, database_url: str, users: int, total_sets: int, seconds: float,
               clients: int) -> dict[str, object]:
    per_workout = 10
    workouts_each = max(1, total_sets // (users * per_workout))
    conn = await asyncpg.connect(database_url)
    try:
        started = time.perf_counter()
        for statement in SEED.split(";\n"):
            if statement.strip():
                sql = statement.replace("$1", str(users)).replace("$2", str(workouts_each)).replace(
                    "$3", str(per_workout))
                await conn.execute(sql)
        seeded = time.perf_counter() - started
        stored = await conn.fetchval("SELECT count(*) FROM workout_sets")
    finally:
        await conn.close()
    tokens = {u: mint(SECRET, f"user-{u}", 3600) for u in range(1, users + 1)}
    timings: dict[str, list[float]] = {"workouts": [], "history": []}
    deadline = time.monotonic() + seconds

    async def client(http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            u = random.randrange(1, users + 1)
            which = random.choice(("workouts", "history"))
            path = "/api/v1/workouts?limit=20" if which == "workouts" else \
                f"/api/v1/exercises/ex{random.randrange(5)}/history?limit=20"
            t0 = time.perf_counter()
            response = await http.get(path, headers={"Authorization": f"Bearer {tokens[u]}"})
            timings[which].append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, response.text

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return {"users": users, "sets_stored": stored, "seed_seconds": round(seeded, 1), "clients": clients,
            "requests_per_s": round(sum(map(len, timings.values())) / seconds, 1),
            "GET /api/v1/workouts ms": percentiles(timings["workouts"]),
            "GET /api/v1/exercises/{id}/history ms": percentiles(timings["history"])}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.storage", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("store")
    s.add_argument("--workouts", type=int, default=20_000)
    s.add_argument("--clients", type=int, default=64, help="workouts being completed at once")
    s.add_argument("--sets", type=int, default=20)
    s.add_argument("--pin", action="store_true", help="the writer on core 0, PostgreSQL on core 1 only")
    r = sub.add_parser("read")
    r.add_argument("--users", type=int, default=10_000)
    r.add_argument("--sets", type=int, default=1_000_000)
    r.add_argument("--seconds", type=float, default=20)
    r.add_argument("--clients", type=int, default=2, help="concurrent requests (closed loop)")
    args = parser.parse_args()
    pinned = args.what == "read" or args.pin
    with Stack(cpus=[0], backend_cpus=[1] if pinned else None, durable=not os.environ.get("BENCH_NO_FSYNC")) as stack:
        if args.what == "store":
            if pinned:
                os.sched_setaffinity(0, [0])
            result = asyncio.run(store(stack.database_url, args.workouts, args.clients, args.sets))
        else:
            (url, _), = stack.liveset(1)
            os.sched_setaffinity(0, [1])  # the HTTP clients beside PostgreSQL; liveset alone on core 0
            result = asyncio.run(read(url, stack.database_url, args.users, args.sets, args.seconds, args.clients))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"storage-{args.what}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    command = "python -m loadtest.storage " + " ".join(sys.argv[1:])
    out.write_text(json.dumps({"command": command, "result": result}, indent=1))
    print(json.dumps(result, indent=1))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
