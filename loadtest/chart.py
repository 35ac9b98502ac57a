"""A PNG of a load-test run: latency percentiles per second, and the server's CPU and memory.

    python -m loadtest.chart loadtest/results/<run>.json     # writes <run>.png beside it

`python -m loadtest` draws it after every run.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen: render straight to a file
import matplotlib.pyplot as plt  # noqa: E402


def _per_second(samples: list[list[float]]) -> tuple[list[int], list[float], list[float]]:
    buckets: dict[int, list[float]] = defaultdict(list)
    for t, value in samples:
        buckets[int(t)].append(value)
    seconds = sorted(buckets)
    p50 = [sorted(buckets[s])[len(buckets[s]) // 2] for s in seconds]
    p99 = [sorted(buckets[s])[max(0, int(len(buckets[s]) * 0.99) - 1)] for s in seconds]
    return seconds, p50, p99


def draw(results: list[dict[str, Any]], out: Path) -> Path:
    fig, (latency, cpu) = plt.subplots(2, 1, figsize=(11, 8), sharex=False)
    rss = cpu.twinx()
    rss.set_ylabel("RSS (MB), dashed")
    for run in results:
        timeline = run["timeline"]
        for name, samples in (("sync", timeline["sync_ms"]), ("timer late", timeline["timer_late_ms"])):
            if samples:
                seconds, p50, p99 = _per_second(samples)
                line, = latency.plot(seconds, p99, label=f"{run['label']}: {name} p99")
                latency.plot(seconds, p50, linestyle=":", color=line.get_color(), label=f"{run['label']}: {name} p50")
        server = timeline["server"]
        if server:
            t = [s[0] for s in server]
            line, = cpu.plot(t, [s[1] for s in server], label=f"{run['label']}: CPU %")
            rss.plot(t, [s[2] for s in server], linestyle="--", color=line.get_color(),
                     label=f"{run['label']}: RSS MB")
    latency.set_yscale("symlog", linthresh=10)
    latency.set_ylabel("milliseconds (p99 solid, p50 dotted)")
    latency.set_xlabel("seconds into the run")
    latency.legend(fontsize=7, loc="upper right")
    latency.grid(alpha=0.3)
    cpu.set_ylabel("server CPU % (solid)")
    cpu.set_xlabel("seconds since the server was watched")
    cpu.legend(fontsize=7, loc="upper left")
    cpu.grid(alpha=0.3)
    connections = ", ".join(f"{r['label']}: {r['connected']} connections" for r in results)
    fig.suptitle(f"{connections}; {results[0]['config']['rate']} sets/s requested")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> None:
    path = Path(sys.argv[1])
    print(draw(json.loads(path.read_text())["results"], path.with_suffix(".png")))


if __name__ == "__main__":
    main()
