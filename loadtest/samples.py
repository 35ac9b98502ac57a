"""What one load-generating process measured; merged by the runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Samples:
    """What one worker measured; merged by the runner."""

    sync_ms: list[tuple[float, float]] = field(default_factory=list)  # (seconds into the run, latency)
    room_ms: list[float] = field(default_factory=list)  # a member's set -> room:activity at another member's device
    ack_ms: list[float] = field(default_factory=list)
    timer_late_ms: list[tuple[float, float]] = field(default_factory=list)
    timer_fire_late_ms: list[float] = field(default_factory=list)  # server_time - ends_at: the firing alone
    connect_ms: list[float] = field(default_factory=list)
    stalls_ms: list[tuple[float, float]] = field(default_factory=list)  # (seconds into the run, ms) of its own loop
    sets_sent: int = 0
    timers_fired: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    gaps: int = 0
    duplicates: int = 0
    out_of_order: int = 0  # arrived after a later seq (each also counted as a gap when skipped)
    connected: int = 0
    dropped: int = 0  # connections lost mid-run (storm or a killed server)
    reconnect_ms: list[float] = field(default_factory=list)  # drop -> connected again
    resync_ms: list[float] = field(default_factory=list)  # drop -> workout:sync answered and applied
    resync_gaps: int = 0  # events missing after a resync
    retries: int = 0  # calls sent again after their connection dropped (same ids: idempotent)
    sets_in_flight: int = 0  # set:complete sent again: no ack came before a fault cut it
    acked_sets: int = 0
    lost_sets: int = 0  # acked, yet absent from the workout at the end
    duplicated_sets: int = 0  # one set_id logged twice in the workout's history
    history_checked: int = 0  # users whose history could be read back (workout:sync)
    violations: dict[str, int] = field(default_factory=dict)  # --chaos: how often each invariant broke

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def answered(samples: Samples, event: str, ack: Any) -> bool:
    """Whether an ack (None: none came) is a success; if not, counted as an error of `event`."""
    if isinstance(ack, dict) and ack.get("ok"):
        return True
    samples.error(f"{event}: no answer" if ack is None else f"{event}: {ack['error'].get('code')}")
    return False
