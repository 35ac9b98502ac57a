"""--chaos: faults at random times while the users train, then the invariants.

The server's faults, one at a time, each kind `per_kind` times in a shuffled order:
kill -9 of a liveset process (started again on its port a moment later), a process
frozen with SIGSTOP past the heartbeat (its peers find it dead; SIGCONT, and it must
come back as a new process), Valkey stopped and started (SIGTERM: its append-only file
is written), Valkey killed with SIGKILL and started again (it loads what its append-only
file has: every write it acknowledged had reached the file, `appendfsync everysec` only
delays the fsync), Postgres stopped and started. The devices' faults, run by the workers at
the times given to them (Config.chaos): a share of the devices drops its connection
without a close, or stops reading it for a while. No fault starts in the last QUIET_S
seconds, so that everything has settled when the invariants are checked (invariants.py,
in the workers; `processes` here).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from typing import Any

import redis

from realtime.live.devices import HEARTBEAT_S, PROCESS_TTL_S

from .stack import Stack

SERVER_FAULTS = ("kill", "freeze", "valkey_restart", "valkey_kill", "postgres_restart")
DEVICE_FAULTS = ("drop", "stop_reading")
FREEZE_S = PROCESS_TTL_S + 2 * HEARTBEAT_S + 1  # past what makes a process dead, and one beat to notice
QUIET_S = 25.0  # a dead process's devices and presence are gone within 12 s; timers fire; devices return
LONGEST_FAULT_S = FREEZE_S + 4


def schedule(duration_s: float, per_kind: int, rng: random.Random) -> tuple[list[tuple[float, str]],
                                                                            list[tuple[float, str]]]:
    """When each fault happens, in seconds into the load: the server's in slots of their
    own (one at a time, each at a random point of its slot), the devices' anywhere."""
    window = duration_s - QUIET_S
    kinds = [k for k in SERVER_FAULTS for _ in range(per_kind)]
    rng.shuffle(kinds)
    slot = window / len(kinds)
    if slot < LONGEST_FAULT_S:
        raise ValueError(f"--duration {duration_s:g} is too short for {len(kinds)} server faults: at least "
                         f"{len(kinds) * LONGEST_FAULT_S + QUIET_S:.0f} s")
    server = [(i * slot + rng.uniform(0, slot - LONGEST_FAULT_S), kind) for i, kind in enumerate(kinds)]
    device = sorted((rng.uniform(0, window), kind) for kind in DEVICE_FAULTS for _ in range(per_kind))
    return server, device


class ServerFaults(threading.Thread):
    """Runs the server's faults at their times, from when the load begins (`begin`, monotonic)."""

    def __init__(self, stack: Stack, pids: list[int], plan: list[tuple[float, str]], rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.stack, self.pids, self.plan, self.rng = stack, pids, plan, rng
        self.begin: float | None = None
        self.done: list[dict[str, Any]] = []
        self.failed: list[str] = []
        self.over = threading.Event()

    def run(self) -> None:
        while self.begin is None:
            time.sleep(0.1)
        for at, kind in self.plan:
            time.sleep(max(0.0, self.begin + at - time.monotonic()))
            started = time.monotonic()
            try:
                target = getattr(self, kind)()
            except Exception as exc:  # noqa: BLE001  (the fault itself failed: the run is not clean)
                self.failed.append(f"{kind} at {at:.0f} s: {exc}")
                continue
            self.done.append({"kind": kind, "at_s": round(started - self.begin, 1), "target": target,
                              "took_s": round(time.monotonic() - started, 1)})
            print(f"  [chaos] {started - self.begin:5.0f}s  {kind} {target}", flush=True)
        # The embedded servers started again here die with the thread that started them
        # (PR_SET_PDEATHSIG is per thread): it lives until the run is over.
        self.over.wait()

    def kill(self) -> str:
        pid = self.rng.choice(self.pids)
        new = self.stack.kill_and_restart(pid, self.rng.uniform(0.5, 3))
        self.pids[self.pids.index(pid)] = new
        return f"pid {pid} -> {new}"

    def freeze(self) -> str:
        pid = self.rng.choice(self.pids)
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(FREEZE_S)
        finally:
            os.kill(pid, signal.SIGCONT)
        return f"pid {pid} for {FREEZE_S:g} s"

    def valkey_restart(self) -> str:
        down = self.rng.uniform(0.5, 3)
        self.stack.restart_backend("redis", down)
        return f"down {down:.1f} s"

    def valkey_kill(self) -> str:
        down = self.rng.uniform(0.5, 3)
        self.stack.restart_backend("redis", down, crash=True)
        return f"down {down:.1f} s"

    def postgres_restart(self) -> str:
        down = self.rng.uniform(2, 8)
        self.stack.restart_backend("postgres", down)
        return f"down {down:.1f} s"

    def count(self, kind: str) -> int:
        return sum(1 for f in self.done if f["kind"] == kind)


def processes(redis_url: str, prefix: str, running: int, faults: ServerFaults) -> dict[str, Any]:
    """No process wrongly dead: every running process beats under one id, and only the
    killed and the frozen ones were ever found dead (each once)."""
    client = redis.Redis.from_url(redis_url)
    live_key, dead_key = f"{prefix}{{procs}}:live", f"{prefix}{{procs}}:dead"
    now = time.time()
    beating = client.zcount(live_key, now - PROCESS_TTL_S, "+inf")
    dead = client.zcard(dead_key)
    expected_dead = faults.count("kill") + faults.count("freeze")
    return {"running": running, "beating": beating, "live_entries": client.zcard(live_key),
            "found_dead": dead, "killed_or_frozen": expected_dead,
            "wrongly_dead": max(0, dead - expected_dead) + max(0, running - beating)}


def report(faults: ServerFaults, device_plan: list[tuple[float, str]], per_kind: int, result: dict[str, Any],
           liveness: dict[str, Any]) -> dict[str, Any]:
    """The run is clean when every fault happened `per_kind` times and nothing broke: no
    invariant, no process wrongly dead, no request failed after an app's retries."""
    happened = {kind: faults.count(kind) for kind in SERVER_FAULTS}
    happened.update({kind: sum(1 for _, k in device_plan if k == kind) for kind in DEVICE_FAULTS})
    broken = dict(result["violations"])
    if liveness["wrongly_dead"]:
        broken["process wrongly dead"] = liveness["wrongly_dead"]
    if result["errors"]:
        broken.update({f"failed after retries: {kind}": n for kind, n in result["errors"].items()})
    if faults.failed:
        broken["fault could not be made"] = len(faults.failed)
    return {"faults": happened, "fault_log": faults.done, "fault_failures": faults.failed, "processes": liveness,
            "sets_in_flight_retried": result["sets_in_flight"], "retries": result["retries"],
            "reconnects": result["dropped"], "broken": broken,
            "clean": not broken and all(n >= per_kind for n in happened.values())}


def summary(outcome: dict[str, Any]) -> str:
    lines = ["chaos: " + ("CLEAN" if outcome["clean"] else "NOT CLEAN"),
             "  faults: " + ", ".join(f"{kind} {n}" for kind, n in outcome["faults"].items()),
             f"  sets in flight at a fault, sent again with the same set_id: {outcome['sets_in_flight_retried']}; "
             f"requests sent again: {outcome['retries']}; reconnects: {outcome['reconnects']}",
             "  processes: {beating} of {running} beating; found dead {found_dead} "
             "(killed or frozen {killed_or_frozen})".format(**outcome["processes"])]
    lines += [f"  BROKEN {what}: {n}" for what, n in outcome["broken"].items()]
    lines += [f"  fault failed: {f}" for f in outcome["fault_failures"]]
    return "\n".join(lines)
