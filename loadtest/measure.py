"""What a load run measures beside its clients: processes' CPU and memory, servers' /metrics,
and the workers' samples merged."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import fields
from typing import Self

import psutil

from .samples import Samples


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"n": len(ordered), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(ordered[-1], 2)}


class _Sampler:
    """A thread that calls `_sample` every `every_s` seconds while the `with` block runs."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class ProcessWatch(_Sampler):
    """CPU and RSS of some processes (and their children), sampled every second: the servers,
    the Redis server, or the load generator's workers. `pids` is read at every sample: a
    process started again in place of a killed one (--chaos) is watched from then on."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(1.0)
        self.pids = pids
        self._procs: dict[int, psutil.Process] = {}
        self.samples: list[tuple[float, float, float]] = []  # (t, cpu %, rss MB)
        self.start = time.monotonic()

    @property
    def procs(self) -> list[psutil.Process]:
        for pid in self.pids:
            if pid not in self._procs:
                with contextlib.suppress(psutil.Error):
                    self._procs[pid] = psutil.Process(pid)
        return [self._procs[pid] for pid in self.pids if pid in self._procs]

    def rss_mb(self) -> float:
        total = 0
        for proc in self.procs:
            with contextlib.suppress(psutil.Error):  # a killed process counts no more
                total += sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
        return total / 2**20

    def _cpu(self) -> float:
        total = 0.0
        for proc in self.procs:
            with contextlib.suppress(psutil.Error):
                total += proc.cpu_percent(None)
        return total

    def _run(self) -> None:
        self._cpu()  # psutil's first reading of each process is 0: a baseline
        super()._run()

    def _sample(self) -> None:
        self.samples.append((time.monotonic() - self.start, self._cpu(), self.rss_mb()))


class StateWatch(_Sampler):
    """What must stay flat in a long run, every `every_s` seconds on a ProcessWatch's clock:
    Redis' memory and keys, and the liveset processes' open asyncio tasks and connections
    (their /metrics)."""

    def __init__(self, redis_url: str, metrics_urls: list[str], start: float, every_s: float = 10.0) -> None:
        import redis

        super().__init__(every_s)
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=5)
        self.urls, self.start = metrics_urls, start
        self.samples: list[tuple[float, float, int, float, float]] = []  # (t, Redis MB, keys, tasks, connections)

    def _sample(self) -> None:
        import redis

        try:
            memory = self.redis.info("memory")["used_memory"] / 2**20
            keys = self.redis.dbsize()
        except redis.RedisError:  # restarting (--chaos): no sample this time
            return
        server = scrape(self.urls, (TASKS, CONNECTIONS))
        self.samples.append((round(time.monotonic() - self.start, 1), round(memory, 2), keys,
                             server.get(TASKS, 0.0), server.get(CONNECTIONS, 0.0)))


def merge(parts: list[Samples]) -> Samples:
    """The workers' samples as one: lists joined, counts added, counters of kinds added kind by kind."""
    total = Samples()
    for part in parts:
        for item in fields(Samples):
            mine, theirs = getattr(total, item.name), getattr(part, item.name)
            if isinstance(mine, dict):
                for kind, n in theirs.items():
                    mine[kind] = mine.get(kind, 0) + n
            else:
                setattr(total, item.name, mine + theirs)
    return total


def cpu_percent(watch: ProcessWatch, window: tuple[float, float] | None) -> float | None:
    """Mean CPU while the load runs; a sample covers the second before it: those wholly inside the load."""
    inside = [c for t, c, _ in watch.samples if window and window[0] + 1 <= t <= window[1]]
    return round(sum(inside) / len(inside), 1) if inside else None


def ms_per_set(watch: ProcessWatch, window: tuple[float, float] | None, sets_per_s: float) -> float | None:
    """CPU per set while the load runs."""
    cpu = cpu_percent(watch, window)
    return round(cpu * 10 / sets_per_s, 3) if cpu is not None and sets_per_s else None


TASKS, CONNECTIONS = "liveset_tasks", "liveset_connections"
GC = ("liveset_gc_pause_seconds_count", "liveset_gc_pause_seconds_sum")  # by generation
LOOP_LAG = ("liveset_loop_lag_seconds_count", 'liveset_loop_lag_seconds_bucket{le="0.025"}',
            'liveset_loop_lag_seconds_bucket{le="0.1"}')


def scrape(urls: list[str], names: tuple[str, ...]) -> dict[str, float]:
    """These series from each liveset server's /metrics, summed over the servers."""
    import httpx

    out: dict[str, float] = {}
    for url in urls:
        try:
            text = httpx.get(f"{url}/metrics", timeout=5).text
        except httpx.HTTPError:
            continue
        for line in text.splitlines():
            if line.startswith(names):
                name, value = line.rsplit(" ", 1)
                out[name] = out.get(name, 0.0) + float(value)
    return out


def stalls(before: dict[str, float], after: dict[str, float]) -> dict[str, int] | None:
    """Loop-lag observations over 25 ms and over 100 ms between two scrapes."""
    if not before or not after:
        return None
    count, over_25, over_100 = LOOP_LAG

    def over(bucket: str) -> int:
        return round((after[count] - after[bucket]) - (before[count] - before[bucket]))

    return {"over_25ms": over(over_25), "over_100ms": over(over_100)}
