"""The embedded Valkey starts with its malloc tuned, unless the caller tuned it already."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from liveset.dev.embedded import VALKEY_MALLOC, EmbeddedRedis


def _tunables(server: EmbeddedRedis) -> str | None:
    assert server.proc is not None
    return psutil.Process(server.proc.pid).environ().get("GLIBC_TUNABLES")


def test_valkey_gets_a_larger_malloc_cache(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    with EmbeddedRedis(workdir / "malloc-valkey", persist=False).start() as server:
        assert _tunables(server) == VALKEY_MALLOC


def test_the_callers_tunables_win(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=7")
    with EmbeddedRedis(workdir / "malloc-valkey-own", persist=False).start() as server:
        assert _tunables(server) == "glibc.malloc.tcache_count=7"
