"""The load generator itself works: a tiny run against real servers measures something
and finds no errors. (Figures belong to benchmarks, not tests: nothing here is timed.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.chaos import DEVICE_FAULTS, SERVER_FAULTS
from loadtest.measure import LOOP_LAG, stalls
from loadtest.report import drift, median_of_rounds, versus_peer
from loadtest.stack import NODE_PEER

from .servers import ROOT

pytestmark = pytest.mark.slow  # each run starts a whole stack (and the peers, npm)


def run_tool(*args: str) -> dict:
    """Run `python -m loadtest` and return its one result (the JSON and chart are removed)."""
    result = subprocess.run([sys.executable, "-m", "loadtest", "--workers", "1", *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    path = Path(result.stdout.strip().splitlines()[-1].removeprefix("results: "))
    chart = Path(result.stdout.strip().splitlines()[-2].removeprefix("chart: "))
    try:
        (run,) = json.loads(path.read_text())["results"]
        assert chart.read_bytes().startswith(b"\x89PNG")  # the chart was drawn
    finally:
        path.unlink()
        chart.unlink(missing_ok=True)
    return run


def test_a_small_run_measures_sync_acks_and_timers() -> None:
    run = run_tool("--users", "20", "--rate", "20", "--rest", "0.5", "--duration", "3", "--label", "smoke")
    assert run["connected"] == 40
    assert run["errors"] == {} and run["gaps"] == 0 and run["duplicates"] == 0 and run["out_of_order"] == 0
    assert run["sets_sent"] >= 40
    assert run["sync_latency_ms"]["n"] == run["sets_sent"]  # every set reached the user's other device
    assert run["timers_fired"] == run["sets_sent"]  # and every rest timer finished, once
    assert run["history"] == {"users_checked": 20, "acked_sets": run["sets_sent"], "lost": 0, "duplicated": 0}
    assert run["server_cpu_ms_per_set"] > 0  # sampled within the load's own seconds
    # The server's loop stalls were read from its /metrics at both ends of the load.
    assert isinstance(run["server_loop_stalls"]["over_25ms"], int)
    assert run["generator_stalls"]["over_25ms"] >= 0


def test_users_in_group_rooms_see_each_others_sets() -> None:
    run = run_tool("--users", "10", "--rate", "10", "--rest", "0", "--duration", "3", "--rooms", "1",
                   "--room-size", "5", "--label", "rooms")
    assert run["errors"] == {} and run["gaps"] == 0 and run["sets_sent"] >= 20
    # Two rooms of five: every set reached both devices of each of the four other members.
    assert run["room_latency_ms"]["n"] == run["sets_sent"] * 4 * 2


def test_a_reconnect_storm_and_a_killed_process_are_survived_and_checked() -> None:
    storm = run_tool("--users", "20", "--rate", "20", "--duration", "4", "--storm", "0.5", "--storm-at", "1",
                     "--label", "storm")
    assert storm["dropped"] == 20 and storm["resynced_within_5s"] == 20 and storm["resync_gaps"] == 0
    assert storm["errors"] == {} and storm["history"]["lost"] == 0 and storm["history"]["duplicated"] == 0
    killed = run_tool("--users", "20", "--rate", "20", "--duration", "4", "--processes", "2", "--kill-at", "1",
                      "--label", "kill")
    # One device of every user was on the killed process: each came back on the other one.
    assert killed["dropped"] == 20 and killed["resynced_within_5s"] == 20 and killed["resync_gaps"] == 0
    assert killed["errors"] == {} and killed["history"]["lost"] == 0 and killed["history"]["duplicated"] == 0
    assert killed["history"]["acked_sets"] == killed["sets_sent"]


@pytest.mark.parametrize("meter, unit", [([], "µs of CPU"), (["--instructions"], "thousands of instructions")])
def test_the_script_bench_measures_valkey_per_call_and_fires_every_timer(meter: list[str], unit: str) -> None:
    if meter and shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed")
    users = 200 if not meter else 10  # under valgrind Valkey runs some 50 times slower
    result = subprocess.run([sys.executable, "-m", "loadtest.scripts", "--users", str(users), "--sets", "4",
                             "--runs", "1", *meter], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    line = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(rf"Valkey per call, {unit}: set_complete ([\d.]+), rest_start ([\d.]+), "
                         rf"timer fired ([\d.]+) \((\d+) of {users * 4} timers fired\)", line)
    assert match, line
    assert float(match[1]) > 0 and float(match[2]) > 0 and int(match[4]) == users * 4


def test_the_ratio_to_the_peer_is_a_bound_when_a_server_held_the_highest_rate_tried_or_none() -> None:
    rates = [900.0, 1200.0, 1800.0]
    assert versus_peer({"liveset x1": 900.0, "node peer x1": 1800.0}, rates) == \
        "liveset / node peer: <= 0.50 x (scenario 3's target: 1.5 x)"
    assert versus_peer({"liveset x1": 1800.0, "node peer x1": 900.0}, rates) == \
        "liveset / node peer: >= 2.00 x (scenario 3's target: 1.5 x)"
    assert versus_peer({"liveset x1": 1200.0, "node peer x1": 900.0}, rates) == \
        "liveset / node peer: 1.33 x (scenario 3's target: 1.5 x)"
    assert "unknown" in versus_peer({"liveset x1": 600.0, "node peer x1": 600.0}, [600.0])
    # One that sustained none of the rates sustains less than the lowest: the other's ratio is a bound.
    assert versus_peer({"liveset x1": 1800.0, "node peer x1": None}, rates) == \
        "liveset / node peer: > 2.00 x, the peer sustained none of the rates tried (scenario 3's target: 1.5 x)"
    assert versus_peer({"liveset x1": None, "node peer x1": 1200.0}, rates) == \
        "liveset / node peer: < 0.75 x, liveset sustained none of the rates tried (scenario 3's target: 1.5 x)"
    assert "try lower rates" in versus_peer({"liveset x1": None, "node peer x1": None}, rates)
    assert versus_peer({"liveset x1": 600.0}, [600.0]) is None  # no peer in the run


def test_server_stalls_are_the_loop_lag_observed_between_the_two_scrapes() -> None:
    count, le_25ms, le_100ms = LOOP_LAG
    before = {count: 100.0, le_25ms: 99.0, le_100ms: 100.0}  # one stall over 25 ms before the load
    after = {count: 400.0, le_25ms: 396.0, le_100ms: 398.0}  # three more over 25 ms, two of them over 100 ms
    assert stalls(before, after) == {"over_25ms": 3, "over_100ms": 2}
    assert stalls({}, after) is None  # not a liveset server (no /metrics): unknown, not zero


def test_a_long_run_is_summarised_per_window_so_that_growth_shows() -> None:
    # 15 minutes: sync latency, RSS, tasks and Redis keys each grow in the last window.
    run = {"config": {"duration_s": 900}, "timeline": {
        "sync_ms": [[t, 2.0 if t < 600 else 40.0] for t in range(0, 900, 3)],
        "timer_late_ms": [[t, 1.0] for t in range(0, 900, 3)],
        "server": [[t, 50.0, 100.0 if t < 600 else 180.0] for t in range(900)],
        "state": [[t, 20.0, 3000 if t < 600 else 9000, 30.0 if t < 600 else 900.0, 400.0] for t in range(0, 900, 10)],
    }}
    header, first, second, third = drift(run).splitlines()
    assert header.split() == ["window", "sync", "p99", "ms", "timer", "p99", "ms", "server", "RSS", "MB", "tasks",
                              "Redis", "MB", "Redis", "keys"]
    assert first.split() == ["0-5", "min", "2.0", "1.0", "100", "30", "20", "3,000"]
    assert second.split()[2:] == first.split()[2:]
    assert third.split() == ["10-15", "min", "40.0", "1.0", "180", "900", "20", "9,000"]
    run["config"]["duration_s"] = 300  # too short to have windows to compare
    assert drift(run) is None


def test_rounds_take_turns_and_the_median_of_each_servers_rounds_judges() -> None:
    assert median_of_rounds({
        "liveset x1 round 1": 3000.0, "node peer x1 round 1": None,
        "liveset x1 round 2": 2400.0, "node peer x1 round 2": 2400.0,
        "liveset x1 round 3": 3300.0, "node peer x1 round 3": 1800.0,
    }) == {"liveset x1": 3000.0, "node peer x1": 1800.0}
    # An even count takes the lower middle; rounds that sustained nothing count lowest.
    assert median_of_rounds({"liveset x2 round 1": None, "liveset x2 round 2": 2700.0}) == {"liveset x2": None}
    assert median_of_rounds({"liveset x1": 900.0}) == {"liveset x1": 900.0}  # one round: as it was

    result = subprocess.run([sys.executable, "-m", "loadtest", "--workers", "1", "--users", "4", "--rate", "4,8",
                             "--duration", "1", "--rounds", "2", "--label", "rounds"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    *_, chart_line, results_line = result.stdout.strip().splitlines()
    path, chart = Path(results_line.removeprefix("results: ")), Path(chart_line.removeprefix("chart: "))
    try:
        labels = [r["label"] for r in json.loads(path.read_text())["results"]]
    finally:
        path.unlink()
        chart.unlink(missing_ok=True)
    assert labels == ["liveset x1 round 1 @4/s", "liveset x1 round 1 @8/s",
                      "liveset x1 round 2 @4/s", "liveset x1 round 2 @8/s"]
    assert "median of 2 rounds, liveset x1: 8.0" in result.stdout


@pytest.mark.parametrize("peer_name", ["node", "pysio"])
def test_each_reference_peer_serves_the_same_load_in_every_round(peer_name: str) -> None:
    # The peers are in the repository (loadtest/peers); the Node one is npm-installed by the tool itself.
    assert (NODE_PEER / "server.js").exists()
    result = subprocess.run([sys.executable, "-m", "loadtest", "--workers", "1", "--users", "10", "--rate", "10",
                             "--rest", "0.5", "--duration", "3", "--compare", peer_name, "--rounds", "2",
                             "--label", "peer"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    *_, chart_line, results_line = result.stdout.strip().splitlines()
    path, chart = Path(results_line.removeprefix("results: ")), Path(chart_line.removeprefix("chart: "))
    try:
        runs = json.loads(path.read_text())["results"]
    finally:
        path.unlink()
        chart.unlink(missing_ok=True)
    peer = [r for r in runs if r["label"].startswith(f"{peer_name} peer")]
    assert len(peer) == 2 and len(runs) == 4
    for run in peer:  # measured as liveset is: every set synced, every timer fired, nothing lost
        assert run["errors"] == {} and run["gaps"] == 0 and run["duplicates"] == 0, run["label"]
        assert run["sets_sent"] >= 20 and run["sync_latency_ms"]["n"] == run["sets_sent"]
        assert run["timers_fired"] == run["sets_sent"]


def test_a_chaos_run_with_every_fault_ends_clean_and_retried_sets_in_flight() -> None:
    run = run_tool("--chaos", "--chaos-per-kind", "1", "--processes", "2", "--users", "20", "--rate", "5",
                   "--rooms", "0.5", "--duration", "130", "--seed", "7", "--label", "chaos")
    outcome = run["chaos"]
    assert outcome["broken"] == {} and outcome["fault_failures"] == [], outcome
    assert set(outcome["faults"]) == {*SERVER_FAULTS, *DEVICE_FAULTS}
    assert all(n == 1 for n in outcome["faults"].values()) and outcome["clean"]
    # A process was frozen for 16 s: the sets sent to it got no ack and were sent again, same set_id.
    assert outcome["sets_in_flight_retried"] > 0
    assert outcome["processes"]["found_dead"] == 2 and outcome["processes"]["beating"] == 2
