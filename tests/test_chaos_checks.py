"""The chaos mode's own parts that need no servers: its schedule of faults, and the timer
invariant catching what it is there to catch (the whole mode runs in test_loadtest_tool.py)."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadtest.chaos import DEVICE_FAULTS, LONGEST_FAULT_S, QUIET_S, SERVER_FAULTS, schedule
from loadtest.invariants import _timers
from loadtest.samples import Samples


@settings(max_examples=200, deadline=None)
@given(per_kind=st.integers(1, 8), spare=st.floats(0, 600), seed=st.integers(0, 2**32))
def test_every_fault_comes_per_kind_times_one_server_fault_at_a_time_none_in_the_quiet_end(
    per_kind: int, spare: float, seed: int,
) -> None:
    duration = per_kind * len(SERVER_FAULTS) * LONGEST_FAULT_S + QUIET_S + spare
    server, device = schedule(duration, per_kind, random.Random(seed))
    for kinds, plan in ((SERVER_FAULTS, server), (DEVICE_FAULTS, device)):
        assert sorted(k for _, k in plan) == sorted(k for k in kinds for _ in range(per_kind))
        assert all(0 <= at <= duration - QUIET_S for at, _ in plan)
    starts = [at for at, _ in server]
    assert all(b - a >= LONGEST_FAULT_S for a, b in zip(starts, starts[1:], strict=False))
    assert starts[-1] + LONGEST_FAULT_S <= duration - QUIET_S


def test_a_run_too_short_for_its_faults_is_refused_with_the_duration_it_needs() -> None:
    with pytest.raises(ValueError, match="at least"):
        schedule(100, 5, random.Random(1))


def _timer(seq: int, status: str, ends_at: int) -> dict[str, Any]:
    return {"seq": seq, "status": status, "ends_at": ends_at}


@pytest.mark.parametrize("timers, broken", [
    ([_timer(2, "running", 10), _timer(3, "finished", 10), _timer(5, "running", 20), _timer(6, "skipped", 20)], {}),
    ([_timer(2, "running", 10), _timer(3, "running", 12), _timer(4, "finished", 12)], {}),  # restarted
    ([_timer(2, "running", 10), _timer(3, "finished", 10), _timer(4, "finished", 10)],
     {"timer finished twice or unstarted": 1}),
    ([_timer(2, "finished", 10)], {"timer finished twice or unstarted": 1}),
    ([_timer(2, "running", 10), _timer(3, "finished", 11)], {"timer finished twice or unstarted": 1}),
    ([_timer(2, "running", 10)], {"timer never finished": 1}),
])
def test_each_timer_must_end_once_and_none_may_still_run(timers: list[dict[str, Any]], broken: dict[str, int]) -> None:
    user = SimpleNamespace(user_id="u", samples=Samples())
    _timers(user, timers)  # type: ignore[arg-type]
    assert user.samples.violations == broken
