"""The server's collection policy (realtime/core/gc_tuning.py): growth is frozen, not scanned;
the timer's full collection unfreezes everything and frees what sits in cycles."""

from __future__ import annotations

import contextlib
import gc
import weakref
from collections.abc import Iterator

from realtime.core.gc_tuning import Collections


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only a collection frees it


@contextlib.contextmanager
def collection_off() -> Iterator[None]:
    """Automatic collection off, as in the server, for one test; frozen objects unfrozen after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()


def test_growth_is_frozen_and_the_timer_collects_everything() -> None:
    with collection_off():
        gc.collect()
        collections = Collections(now=0.0, growth_limit=1_000, full_every_s=600)
        frozen = gc.get_freeze_count()
        garbage = _Node()
        dead = weakref.ref(garbage)
        del garbage
        live = [[] for _ in range(2_000)]
        collections.tick(now=5.0)  # past the growth limit: frozen, nothing collected
        assert gc.get_freeze_count() >= frozen + len(live)
        assert dead() is not None
        collections.tick(now=10.0)  # no new growth: nothing happens
        assert dead() is not None
        collections.tick(now=600.0)  # the timer: everything collected once, then frozen again
        assert dead() is None
        assert gc.get_freeze_count() >= frozen + len(live)
