"""Drive a server with real Socket.IO clients the way the apps do, and report what users feel.

    python -m loadtest --users 1000 --rate 300 --rest 2 --duration 60            # liveset, 1 process
    python -m loadtest --users 1000 --rate 300 --compare node                    # + the Node peer, same run
    python -m loadtest --users 1000 --rate 300 --rooms 0.2                       # a fifth in group rooms of 5
    python -m loadtest --users 1000 --timers-only --duration 30                  # rest-timer lateness
    python -m loadtest --users 5000 --idle --duration 10 --compare node          # memory per idle connection
    python -m loadtest --users 2500 --rate 100 --storm 1.0 --storm-at 10         # reconnect storm, resync
    python -m loadtest --users 1000 --rate 300 --processes 2 --kill-at 10        # kill -9 of one process
    python -m loadtest --chaos --processes 3 --users 200 --rate 40 --rooms 0.5 --duration 600   # faults of every kind
    python -m loadtest --users 1000 --rate 300,600,900 --duration 20 --compare node   # highest rate sustained
    python -m loadtest --target http://127.0.0.1:8000 --secret ... --users 100   # a running server

Servers it starts are pinned to --server-cpus, Valkey and Postgres to
--backend-cpus, and the load generator's processes to --client-cpus. Results go
to loadtest/results/<label>-<time>.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import queue
import random
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import chaos
from .chart import draw
from .config import Config
from .measure import (
    GC,
    LOOP_LAG,
    ProcessWatch,
    StateWatch,
    cpu_percent,
    merge,
    ms_per_set,
    percentiles,
    scrape,
    stalls,
)
from .noisy import main as noisy_main
from .report import (
    DRIFT_WINDOW_S,
    NOISY,
    ROUND,
    SUSTAINED_P99_MS,
    drift,
    fresh_server_memory_only,
    median_of_rounds,
    neighbour_effect,
    sustained,
    table,
    versus_peer,
)
from .samples import Samples
from .stack import SECRET, Stack
from .user import PLAN, REPS
from .worker import main as worker_main

RESULTS = Path(__file__).resolve().parent / "results"


def _cpus(text: str | None) -> list[int] | None:
    return [int(c) for c in text.split(",")] if text else None


def run_load(cfg: Config, workers: int, client_cpus: list[int] | None, server_pids: list[int],
             kill_at: float | None = None, redis_pid: int | None = None,
             metrics_urls: list[str] | None = None, on_begin: Callable[[float], None] | None = None,
             redis_url: str | None = None) -> dict[str, Any]:
    """One load against one server (or several processes of it). `kill_at`: seconds into
    the load at which the first server process gets SIGKILL. `redis_pid`: the Redis server
    both share, whose CPU per set is reported too (a server's Lua runs there, on the
    generator's core in the default layout). `metrics_urls`: liveset processes whose
    event-loop stalls during the load are read from /metrics. `on_begin`: told when the
    load begins (time.monotonic()), once every device has connected. `redis_url`: Redis'
    memory and keys, and the processes' open tasks, are sampled for the chart."""
    ctx = multiprocessing.get_context("spawn")
    results: Any = ctx.Queue()
    progress: Any = ctx.Queue()
    go = ctx.Event()
    share = [cfg.users // workers + (1 if i < cfg.users % workers else 0) for i in range(workers)]
    firsts = [sum(share[:i]) for i in range(workers)]
    with contextlib.ExitStack() as watches:
        watch = watches.enter_context(ProcessWatch(server_pids))
        backend = watches.enter_context(ProcessWatch([redis_pid] if redis_pid else []))
        rss_before = watch.rss_mb()
        state = watches.enter_context(StateWatch(redis_url, metrics_urls or [], watch.start)) if redis_url else None
        procs = [ctx.Process(target=worker_main, args=(cfg, firsts[i], share[i], workers, client_cpus, results,
                                                       progress, go)) for i in range(workers)]
        if cfg.noisy:
            procs.append(ctx.Process(target=noisy_main, args=(cfg, client_cpus, results, go)))
        started = time.monotonic()
        for proc in procs:
            proc.start()
        generator = watches.enter_context(ProcessWatch([proc.pid for proc in procs]))
        parts: list[Samples] = []
        noisy: dict[str, Any] | None = None
        connected, reported, rss_connected, last_print = 0, 0, None, 0.0
        load_window: tuple[float, float] | None = None  # on the watch's clock
        lag_before: dict[str, float] = {}
        lag_after: dict[str, float] = {}
        lag_timer: threading.Timer | None = None
        while len(parts) < workers or (cfg.noisy and noisy is None):
            try:
                part = results.get(timeout=0.5)
                if isinstance(part, tuple):
                    noisy = part[1]
                else:
                    parts.append(part)
                continue
            except queue.Empty:
                pass
            while True:
                try:
                    message = progress.get_nowait()
                except queue.Empty:
                    break
                if message[0] == "connected":
                    connected += message[1]
                    reported += 1
                    if reported == workers:
                        time.sleep(2)  # let the server settle after the connect storm
                        rss_connected = watch.rss_mb()
                        lag_before = scrape(metrics_urls or [], LOOP_LAG)
                        go.set()
                        # The workers' load runs once users have arrived, for duration_s.
                        begins = time.monotonic() - watch.start + cfg.arrival_s
                        load_window = (begins, begins + cfg.duration_s)
                        if metrics_urls:
                            lag_timer = threading.Timer(cfg.arrival_s + cfg.duration_s,
                                                        lambda: lag_after.update(scrape(metrics_urls, LOOP_LAG)))
                            lag_timer.start()
                        if kill_at is not None:
                            threading.Timer(cfg.arrival_s + kill_at, os.kill, (server_pids[0], signal.SIGKILL)).start()
                        if on_begin is not None:
                            on_begin(time.monotonic() + cfg.arrival_s)
            if time.monotonic() - last_print > 5:
                last_print = time.monotonic()
                cpu = watch.samples[-1][1] if watch.samples else 0
                print(f"  [{cfg.label}] {time.monotonic() - started:5.0f}s  connected {connected}  "
                      f"server cpu {cpu:.0f}%  rss {watch.rss_mb():.0f} MB", flush=True)
            if any(not p.is_alive() and p.exitcode not in (0, None) for p in procs):
                raise RuntimeError("a load worker died")
        for proc in procs:
            proc.join()
        if lag_timer is not None:
            lag_timer.join()
    total = merge(parts)
    generator_stalls = [ms for _, ms in total.stalls_ms]
    cpu = [c for _, c, _ in watch.samples]
    connections = cfg.users * cfg.devices
    rss_per_conn = ((rss_connected - rss_before) * 1024 / connections) if rss_connected and connections else None
    sets_per_s = total.sets_sent / cfg.duration_s
    return {
        "label": cfg.label,
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("secret",)},
        "sync_latency_ms": percentiles([x for _, x in total.sync_ms]),
        "ack_latency_ms": percentiles(total.ack_ms),
        "room_latency_ms": percentiles(total.room_ms),
        "timer_lateness_ms": percentiles([x for _, x in total.timer_late_ms]),
        "timer_fired_late_ms": percentiles(total.timer_fire_late_ms),
        "connect_ms": percentiles(total.connect_ms),
        "sets_sent": total.sets_sent,
        "sets_per_s": round(sets_per_s, 1),
        "timers_fired": total.timers_fired,
        "connected": total.connected,
        "dropped": total.dropped,
        "reconnect_ms": percentiles(total.reconnect_ms),
        "resync_ms": percentiles(total.resync_ms),
        "resynced_within_5s": sum(1 for x in total.resync_ms if x <= 5000),
        "resync_gaps": total.resync_gaps,
        "retries": total.retries,
        "sets_in_flight": total.sets_in_flight,
        "violations": total.violations,
        "history": {"users_checked": total.history_checked, "acked_sets": total.acked_sets,
                    "lost": total.lost_sets, "duplicated": total.duplicated_sets},
        "gaps": total.gaps,
        "duplicates": total.duplicates,
        "out_of_order": total.out_of_order,
        "errors": total.errors,
        "noisy_neighbour": noisy,
        "redis_cpu_percent": cpu_percent(backend, load_window) if redis_pid else None,
        "server_cpu_percent": {"mean": round(sum(cpu) / len(cpu), 1) if cpu else None,
                               "max": round(max(cpu), 1) if cpu else None},
        # Server CPU per set while the load runs (a set and its rest timer: every event they cause):
        # comparable between servers where the load generator, not the server, caps the rate.
        "server_cpu_ms_per_set": ms_per_set(watch, load_window, sets_per_s),
        "redis_cpu_ms_per_set": ms_per_set(backend, load_window, sets_per_s) if redis_pid else None,
        # Whether the generator, sharing a core with Redis, rather than the server capped the rate.
        "generator_cpu_ms_per_set": ms_per_set(generator, load_window, sets_per_s),
        # Event-loop stalls during the load: a latency spike is the server's own when its loop
        # stalled then, and the generator's when the generator's did.
        "server_loop_stalls": stalls(lag_before, lag_after) if metrics_urls else None,
        "generator_stalls": {"over_25ms": sum(1 for ms in generator_stalls if ms > 25),
                             "max_ms": round(max(generator_stalls, default=0.0), 1)},
        "server_rss_mb": {"before": round(rss_before, 1), "max": round(max((r for *_, r in watch.samples),
                                                                             default=rss_before), 1)},
        "rss_kb_per_connection": round(rss_per_conn, 1) if rss_per_conn else None,
        "timeline": {"sync_ms": total.sync_ms[:: max(1, len(total.sync_ms) // 5000)],
                     "timer_late_ms": total.timer_late_ms[:: max(1, len(total.timer_late_ms) // 5000)],
                     "generator_stalls_ms": total.stalls_ms,
                     "server": watch.samples,
                     "state": state.samples if state else []},
    }


def _rates(text: str) -> list[float]:
    return [float(r) for r in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--rate", type=_rates, default=[100.0],
                        help="sets per second, all users together; several (300,600,900) run one after another "
                             "and the highest one sustained is reported")
    parser.add_argument("--rest", type=float, default=2.0, help="rest timer after each set, seconds (0: none)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load after everyone connected")
    parser.add_argument("--connect-rate", type=float, default=500, help="new connections per second")
    parser.add_argument("--timers-only", action="store_true", help="no sets: each user chains 2-5 s rest timers")
    parser.add_argument("--idle", action="store_true", help="connect, hold the connections, send nothing")
    parser.add_argument("--processes", type=int, default=1, help="liveset web processes to start")
    parser.add_argument("--storm", type=float, default=0.0, metavar="SHARE",
                        help="reconnect storm: this share of the connections drops at once and reconnects")
    parser.add_argument("--storm-at", type=float, default=10.0, help="seconds into the load")
    parser.add_argument("--storm-spread", type=float, default=1.0, help="reconnects spread over this many seconds")
    parser.add_argument("--kill-at", type=float, help="SIGKILL one liveset process this many seconds into the load "
                                                      "(needs --processes 2 or more; its clients fail over)")
    parser.add_argument("--rooms", type=float, default=0.0, metavar="SHARE",
                        help="this share of the users trains together in group rooms (sets reach the room too)")
    parser.add_argument("--room-size", type=int, default=5, help="users per group room")
    parser.add_argument("--noisy", action="store_true",
                        help="run the load twice, the second time with a noisy neighbour beside it: one more user "
                             "on ten devices at the rate limit, the costliest way (loadtest/noisy.py)")
    parser.add_argument("--workout-sets", type=int,
                        help="a user completes the workout after this many sets (stored in Postgres) and starts "
                             "the next; default: one workout for the whole run, or 20 (the plan) with --chaos")
    parser.add_argument("--chaos", action="store_true",
                        help="faults at random times while the users train (loadtest/chaos.py): kill -9 of a "
                             "process, one frozen past its heartbeat, Valkey and Postgres restarted, devices "
                             "dropping or not reading; then every invariant checked (loadtest/invariants.py)")
    parser.add_argument("--chaos-per-kind", type=int, default=5, help="with --chaos: how often each fault happens")
    parser.add_argument("--seed", type=int, help="with --chaos: the faults' random order and times")
    parser.add_argument("--compare", choices=["node", "pysio"],
                        help="run the same load against a reference peer too (loadtest/peers): the Node.js "
                             "socket.io server, or a plain python-socketio one with its AsyncRedisManager")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every server's rates this many times, taking turns; the median of the rounds' "
                             "highest sustained rates is reported")
    parser.add_argument("--target", help="a running server's URL instead of starting one")
    parser.add_argument("--target-pid", type=int, action="append", default=[], help="its pids, for CPU/RSS")
    parser.add_argument("--secret", default=os.environ.get("JWT_SECRET", SECRET), help="with --target: its JWT_SECRET")
    parser.add_argument("--workers", type=int, default=None,
                        help="load-generating processes (default: one per core of --client-cpus; more on one "
                             "core only take turns, and cost 15-20 %% more CPU per set)")
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--backend-cpus", default="1")
    parser.add_argument("--client-cpus", default="1")
    parser.add_argument("--label", default="")
    args = parser.parse_args()

    def config(label: str, url: str, rate: float, noisy: bool = False) -> Config:
        if len(args.rate) > 1:
            label = f"{label} @{rate:g}/s"
        return Config(url=url, secret=args.secret, users=args.users, devices=args.devices, rate=rate,
                      rest_s=args.rest, duration_s=args.duration, connect_rate=args.connect_rate,
                      timers_only=args.timers_only, label=label, run_id=uuid.uuid4().hex[:8], idle=args.idle,
                      storm=args.storm, storm_at=args.storm_at, storm_spread_s=args.storm_spread,
                      failover=args.kill_at is not None, rooms=args.rooms, room_size=args.room_size, noisy=noisy,
                      workout_sets=args.workout_sets or 0)

    if args.kill_at is not None and (args.processes < 2 or args.target or args.compare or len(args.rate) > 1):
        parser.error("--kill-at needs --processes 2 or more, one --rate, and no --target or --compare")

    if args.chaos and (args.processes < 2 or args.target or args.compare or args.noisy or len(args.rate) > 1
                       or args.rounds > 1 or args.kill_at is not None or args.storm):
        parser.error("--chaos needs --processes 2 or more and one --rate, without --target, --compare, --noisy, "
                     "--rounds, --kill-at or --storm")
    if args.chaos:
        return run_chaos(args, config)

    if args.noisy and (args.target or args.compare):
        parser.error("--noisy runs liveset twice, quiet and noisy: no --target or --compare")
    if args.rooms and args.compare:
        parser.error("--rooms cannot be compared: the reference peers have no group rooms")
    if not 0 <= args.rooms <= 1 or args.room_size < 2:
        parser.error("--rooms is a share (0 to 1) and --room-size at least 2")
    if args.rounds < 1 or (args.rounds > 1 and args.target):
        parser.error("--rounds is 1 or more, and takes turns only between servers this tool starts")

    client_cpus = _cpus(args.client_cpus)
    args.workers = args.workers or len(client_cpus or os.sched_getaffinity(0))
    results = []
    if args.target:
        for rate in args.rate:
            results.append(run_load(config(args.label or "target", args.target, rate), args.workers, client_cpus,
                                    args.target_pid, metrics_urls=args.target.split(",")))
    else:
        with Stack(_cpus(args.server_cpus), _cpus(args.backend_cpus)) as stack:
            runs = [(f"liveset x{args.processes}", stack.liveset, False)]
            if args.noisy:
                runs.append((f"liveset x{args.processes} {NOISY}", stack.liveset, True))
            if args.compare:
                runs.append((f"{args.compare} peer x{args.processes}", stack.peer(args.compare), False))
            # Round after round the servers take turns, each on fresh processes: the hour's
            # noise then falls on both, and the median of the rounds judges (median_of_rounds).
            turns = [(label if args.rounds == 1 else f"{label}{ROUND}{n}", start, noisy)
                     for n in range(1, args.rounds + 1) for label, start, noisy in runs]
            for label, start, noisy in turns:
                servers = start(args.processes)
                # Devices of one user on different processes when there are several.
                url = ",".join(u for u, _ in servers)
                first = len(results)
                ours = [u for u, _ in servers] if label.startswith("liveset") else []  # with /metrics
                for rate in args.rate:
                    results.append(run_load(config(label, url, rate, noisy), args.workers, client_cpus,
                                            [pid for _, pid in servers], args.kill_at, stack.redis_pid, ours,
                                            redis_url=stack.redis.url))
                    if ours:
                        results[-1]["server_gc"] = scrape(ours, GC)
                fresh_server_memory_only(results[first:])
                stack.stop_servers()
    save(args, results)


def run_chaos(args: argparse.Namespace, config: Callable[..., Config]) -> None:
    rng = random.Random(args.seed)
    try:
        server_plan, device_plan = chaos.schedule(args.duration, args.chaos_per_kind, rng)
    except ValueError as exc:
        raise SystemExit(f"python -m loadtest: error: {exc}") from None
    client_cpus = _cpus(args.client_cpus)
    with Stack(_cpus(args.server_cpus), _cpus(args.backend_cpus), restartable=True) as stack:
        servers = stack.liveset(args.processes)
        pids = [pid for _, pid in servers]
        faults = chaos.ServerFaults(stack, pids, server_plan, rng)
        faults.start()
        cfg = config(f"liveset x{args.processes} chaos", ",".join(u for u, _ in servers), args.rate[0])
        cfg.failover, cfg.chaos, cfg.database_url = True, device_plan, stack.database_url
        if args.workout_sets is None:
            cfg.workout_sets = len(PLAN) * len(REPS)  # the plan done: complete it, start the next
        result = run_load(cfg, args.workers or len(client_cpus or os.sched_getaffinity(0)), client_cpus, pids,
                          redis_pid=stack.redis_pid, on_begin=lambda at: setattr(faults, "begin", at),
                          metrics_urls=[u for u, _ in servers], redis_url=stack.redis.url)
        result["chaos"] = chaos.report(faults, device_plan, args.chaos_per_kind, result,
                                       chaos.processes(stack.redis.url, "ls:", len(pids), faults))
    faults.over.set()  # after the stack has stopped what the thread started
    faults.join()
    save(args, [result], chaos.summary(result["chaos"]))


def save(args: argparse.Namespace, results: list[dict[str, Any]], verdict: str | None = None) -> None:
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", args.label or results[0]["label"].split(" @")[0])
    out = RESULTS / f"{name}-{stamp}.json"
    out.write_text(json.dumps({"command": " ".join(["python -m loadtest", *sys.argv[1:]]), "results": results},
                              indent=1))
    chart = draw(results, out.with_suffix(".png"))
    print()
    print(table(results))
    if len(args.rate) > 1:
        print()
        best = sustained(results)
        for server, rate in best.items():
            print(f"highest rate sustained (sync p99 <= {SUSTAINED_P99_MS} ms, no errors), {server}: {rate or 'none'}")
        if args.rounds > 1:
            best = median_of_rounds(best)
            for server, rate in best.items():
                print(f"median of {args.rounds} rounds, {server}: {rate or 'none'}")
        if (line := versus_peer(best, args.rate)) is not None:
            print(line)
    if args.noisy:
        print()
        print(neighbour_effect(results))
    for run in results:
        if (windows := drift(run)) is not None:
            print(f"\n{run['label']}, every {DRIFT_WINDOW_S // 60} minutes:\n{windows}")
    if verdict is not None:
        print()
        print(verdict)
    print(f"\nchart: {chart}")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
