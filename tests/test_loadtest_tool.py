"""The load generator itself works: a tiny run against real servers measures something
and finds no errors. (Figures belong to benchmarks, not tests: nothing here is timed.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .servers import ROOT


def test_a_small_run_measures_sync_acks_and_timers() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loadtest", "--users", "20", "--rate", "20", "--rest", "0.5", "--duration", "3",
         "--workers", "1", "--label", "smoke"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    path = Path(result.stdout.strip().splitlines()[-1].removeprefix("results: "))
    chart = Path(result.stdout.strip().splitlines()[-2].removeprefix("chart: "))
    try:
        (run,) = json.loads(path.read_text())["results"]
        assert chart.read_bytes().startswith(b"\x89PNG")  # the chart was drawn
    finally:
        path.unlink()
        chart.unlink(missing_ok=True)
    assert run["connected"] == 40
    assert run["errors"] == {} and run["gaps"] == 0 and run["duplicates"] == 0
    assert run["sets_sent"] >= 40
    assert run["sync_latency_ms"]["n"] == run["sets_sent"]  # every set reached the user's other device
    assert run["timers_fired"] == run["sets_sent"]  # and every rest timer finished, once
