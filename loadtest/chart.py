"""A PNG of a load-test run: per run, latency percentiles per second, the server's CPU and memory,
and (when sampled) Redis' memory and keys and the server's open tasks.

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


def _columns(results: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """One column per server (a label's part before " @"), its runs top to bottom."""
    columns: dict[str, list[dict[str, Any]]] = {}
    for run in results:
        columns.setdefault(run["label"].split(" @")[0], []).append(run)
    return list(columns.values())


def draw(results: list[dict[str, Any]], out: Path) -> Path:
    """Per run, two panels: latency percentiles per second, and the server's CPU and RSS.
    Runs of one server stack in a column, servers side by side; latency axes are shared
    so that runs compare at a glance."""
    columns = _columns(results)
    rows = max(len(c) for c in columns)
    panels = 3 if any(r["timeline"].get("state") for r in results) else 2  # + Redis and tasks, when sampled
    fig, axes = plt.subplots(panels * rows, len(columns), figsize=(7 * len(columns), 2.2 * panels * rows),
                             squeeze=False)
    top = max((x for r in results for key in ("sync_ms", "timer_late_ms") for _, x in r["timeline"][key]),
              default=10)
    for col, runs in enumerate(columns):
        for row in range(rows):
            mine = [axes[panels * row + k][col] for k in range(panels)]
            if row >= len(runs):
                for ax in mine:
                    ax.axis("off")
                continue
            _run_panels(runs[row], mine[0], mine[1], top)
            if panels == 3:
                _state_panel(runs[row]["timeline"].get("state", []), mine[2])
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _run_panels(run: dict[str, Any], latency: Any, resources: Any, top: float) -> None:
    timeline = run["timeline"]
    for name, samples, color in (("sync", timeline["sync_ms"], "tab:blue"),
                                 ("timer late", timeline["timer_late_ms"], "tab:orange")):
        if samples:
            seconds, p50, p99 = _per_second(samples)
            latency.plot(seconds, p99, color=color, label=f"{name} p99")
            latency.plot(seconds, p50, color=color, linestyle=":", label=f"{name} p50")
    latency.set_yscale("symlog", linthresh=10)
    latency.set_ylim(0, max(top, 10) * 1.5)
    latency.set_ylabel("ms")
    latency.set_xlabel("seconds into the run")
    latency.grid(alpha=0.3)
    if latency.lines:
        latency.legend(fontsize=7, loc="upper left", ncol=2)
    latency.set_title(f"{run['label']}: {run['connected']} connections, {run['sets_per_s']} sets/s, "
                      f"sync p99 {run['sync_latency_ms']['p99']} ms, errors {sum(run['errors'].values())}",
                      fontsize=9)
    server = timeline["server"]
    if server:
        t = [s[0] for s in server]
        resources.plot(t, [s[1] for s in server], color="tab:green", label="server CPU %")
        rss = resources.twinx()
        rss.plot(t, [s[2] for s in server], color="tab:purple", linestyle="--", label="server RSS MB")
        rss.set_ylabel("RSS MB (dashed)")
    resources.set_ylim(0, max([105.0, *(s[1] * 1.05 for s in server)]))  # several processes: over 100
    resources.set_ylabel("CPU % of one core")
    resources.set_xlabel("seconds since the server was watched")
    resources.grid(alpha=0.3)


def _state_panel(state: list[list[float]], ax: Any) -> None:
    """What must stay flat in a long run: Redis' memory and keys, the servers' open tasks."""
    if state:
        t = [s[0] for s in state]
        ax.plot(t, [s[1] for s in state], color="tab:red", label="Redis MB")
        keys, tasks = ax.twinx(), ax.twinx()
        tasks.spines["right"].set_position(("axes", 1.22))  # a third scale: tens of tasks, thousands of keys
        keys.plot(t, [s[2] for s in state], color="tab:brown", linestyle="--", label="Redis keys")
        tasks.plot(t, [s[3] for s in state], color="tab:gray", linestyle=":", label="server tasks")
        keys.set_ylabel("Redis keys (dashed)")
        tasks.set_ylabel("server asyncio tasks (dotted)")
        for axis in (keys, tasks):
            axis.set_ylim(bottom=0, top=max(1.0, *(line.get_ydata().max() for line in axis.lines)) * 1.1)
        ax.legend(fontsize=7, loc="lower left")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("Redis MB")
    ax.set_xlabel("seconds since the server was watched")
    ax.grid(alpha=0.3)


def main() -> None:
    path = Path(sys.argv[1])
    print(draw(json.loads(path.read_text())["results"], path.with_suffix(".png")))


if __name__ == "__main__":
    main()
