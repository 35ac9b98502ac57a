"""Prometheus metrics of one process, in a registry of its own per app.

A registry per app (not the global one) so that two apps in one test process
don't collide, and so /metrics shows exactly this server's figures.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Socket handlers answer in well under a millisecond when healthy; the buckets
# resolve that range and still show a stall of seconds.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connections = Gauge(
            "liveset_connections", "Socket.IO connections open on this process", registry=self.registry
        )
        self.connects = Counter(
            "liveset_connects", "Socket.IO connection attempts by outcome", ["outcome"], registry=self.registry
        )
        self.events = Counter(
            "liveset_events", "Client events handled, by event name and outcome (ok or an error code)",
            ["event", "outcome"], registry=self.registry,
        )
        self.latency = Histogram(
            "liveset_event_seconds", "Time to handle a client event, until its ack", ["event"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self._handled: dict[tuple[str, str], tuple[Counter, Histogram]] = {}

        self.fanout_events = Counter(
            "liveset_fanout_events", "Events delivered from pub/sub to this process's sockets", registry=self.registry
        )
        self.slow_consumers = Counter(
            "liveset_slow_consumers", "Sockets cut off because they stopped reading", registry=self.registry
        )
        self.timers_fired = Counter(
            "liveset_timers_fired", "Rest timers this process fired (finished events)", registry=self.registry
        )

        self.tasks = Gauge("liveset_tasks", "asyncio tasks open in this process", registry=self.registry)
        self.tasks.set_function(_open_tasks)

        self.gc_pause = Histogram(
            "liveset_gc_pause_seconds", "Garbage collection pauses by generation", ["generation"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.loop_lag = Histogram(
            "liveset_loop_lag_seconds", "How late the event loop woke from a 50 ms sleep (loop_lag.py)",
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )

    def event_handled(self, event: str, outcome: str, seconds: float) -> None:
        # labels() checks and locks on every call (a few µs, twice per event): each
        # child is looked up once. Event names and outcomes are a closed set.
        children = self._handled.get((event, outcome))
        if children is None:
            children = (self.events.labels(event, outcome), self.latency.labels(event))
            self._handled[(event, outcome)] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _open_tasks() -> float:
    """Read when /metrics is rendered, on the event loop; a long run's leak shows here."""
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:  # no running loop (rendered outside one)
        return 0
