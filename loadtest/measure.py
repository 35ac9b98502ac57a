"""What a load run measures beside its clients: processes' CPU and memory, servers' /metrics,
and the workers' samples merged."""

from __future__ import annotations

import contextlib
import threading
import time

import psutil

from .samples import Samples


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"n": len(ordered), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(ordered[-1], 2)}


class ProcessWatch:
    """CPU and RSS of some processes (and their children), sampled every second: the servers,
    the Redis server, or the load generator's workers."""

    def __init__(self, pids: list[int]) -> None:
        self.procs = [psutil.Process(pid) for pid in pids]
        self.samples: list[tuple[float, float, float]] = []  # (t, cpu %, rss MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.start = time.monotonic()

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
        self._cpu()
        while not self._stop.wait(1.0):
            self.samples.append((time.monotonic() - self.start, self._cpu(), self.rss_mb()))

    def __enter__(self) -> ProcessWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def merge(parts: list[Samples]) -> Samples:
    total = Samples()
    for part in parts:
        total.sync_ms += part.sync_ms
        total.room_ms += part.room_ms
        total.ack_ms += part.ack_ms
        total.timer_late_ms += part.timer_late_ms
        total.timer_fire_late_ms += part.timer_fire_late_ms
        total.connect_ms += part.connect_ms
        total.stalls_ms += part.stalls_ms
        total.sets_sent += part.sets_sent
        total.timers_fired += part.timers_fired
        total.gaps += part.gaps
        total.duplicates += part.duplicates
        total.out_of_order += part.out_of_order
        total.connected += part.connected
        total.dropped += part.dropped
        total.reconnect_ms += part.reconnect_ms
        total.resync_ms += part.resync_ms
        total.resync_gaps += part.resync_gaps
        total.retries += part.retries
        total.acked_sets += part.acked_sets
        total.lost_sets += part.lost_sets
        total.duplicated_sets += part.duplicated_sets
        total.history_checked += part.history_checked
        for kind, n in part.errors.items():
            total.errors[kind] = total.errors.get(kind, 0) + n
    return total


def cpu_percent(watch: ProcessWatch, window: tuple[float, float] | None) -> float | None:
    """Mean CPU while the load runs; a sample covers the second before it: those wholly inside the load."""
    inside = [c for t, c, _ in watch.samples if window and window[0] + 1 <= t <= window[1]]
    return round(sum(inside) / len(inside), 1) if inside else None


def ms_per_set(watch: ProcessWatch, window: tuple[float, float] | None, sets_per_s: float) -> float | None:
    """CPU per set while the load runs."""
    cpu = cpu_percent(watch, window)
    return round(cpu * 10 / sets_per_s, 3) if cpu is not None and sets_per_s else None


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
