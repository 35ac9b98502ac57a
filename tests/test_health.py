"""/healthz, /readyz (with a Redis that really stops and comes back) and /metrics."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from liveset.dev.embedded import EmbeddedPostgres, EmbeddedRedis

from .clients import Device, token
from .conftest import make_settings
from .servers import in_process


async def test_healthz(server: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{server}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_follows_redis_down_and_back(database_url: str, workdir: Path) -> None:
    redis = EmbeddedRedis(workdir / "readyz-valkey", persist=False).start()
    try:
        async with in_process(make_settings(redis.url, database_url)) as url, httpx.AsyncClient() as http:
            assert (await http.get(f"{url}/readyz")).json() == {"status": "ready"}
            redis.stop()
            down = await http.get(f"{url}/readyz", timeout=10)
            assert down.status_code == 503
            assert down.json() == {"status": "unavailable", "failed": ["redis"]}
            assert (await http.get(f"{url}/healthz")).status_code == 200  # alive all the same
            redis.start()  # same port: the app reconnects by itself
            for _ in range(50):
                back = await http.get(f"{url}/readyz", timeout=10)
                if back.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert back.status_code == 200
            assert back.json() == {"status": "ready"}
    finally:
        redis.stop()


async def test_readyz_names_postgres_when_it_stops(redis_url: str, workdir: Path) -> None:
    postgres = EmbeddedPostgres(workdir / "readyz-postgres", durable=False).start()
    try:
        settings = make_settings(redis_url, postgres.create_database("readyz"))
        async with in_process(settings) as url, httpx.AsyncClient() as http:
            assert (await http.get(f"{url}/readyz")).status_code == 200
            postgres.stop()
            down = await http.get(f"{url}/readyz", timeout=10)
            assert down.status_code == 503
            assert down.json() == {"status": "unavailable", "failed": ["postgres"]}
            postgres.start()
            for _ in range(50):
                back = await http.get(f"{url}/readyz", timeout=10)
                if back.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert back.json() == {"status": "ready"}
    finally:
        postgres.stop()


async def test_metrics_count_connections_and_events(server: str) -> None:
    device = await Device().connect(server, {"token": token("metrics-user"), "device_id": "phone"})
    try:
        await device.wait_for("session:ready")
        assert (await device.emit("time:sync", {}))["ok"] is True
        assert (await device.emit("no:such-event", {}))["ok"] is False
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{server}/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
        assert "liveset_connections 1.0" in text
        assert 'liveset_connects_total{outcome="accepted"} 1.0' in text
        assert 'liveset_events_total{event="time:sync",outcome="ok"} 1.0' in text
        assert 'liveset_events_total{event="unknown",outcome="invalid_payload"} 1.0' in text
        assert 'liveset_event_seconds_count{event="time:sync"} 1.0' in text
    finally:
        await device.close()


def _stalls_over(metrics: str, seconds: str) -> float:
    """Loop-lag observations above `seconds` (a bucket bound), from /metrics text."""
    count = bucket = None
    for line in metrics.splitlines():
        if line.startswith("liveset_loop_lag_seconds_count "):
            count = float(line.split()[-1])
        elif line.startswith(f'liveset_loop_lag_seconds_bucket{{le="{seconds}"}} '):
            bucket = float(line.split()[-1])
    assert count is not None and bucket is not None, "no loop-lag histogram on /metrics"
    return count - bucket


async def test_metrics_show_a_stalled_event_loop(server: str) -> None:
    # The server runs in this test's event loop: blocking it here stalls the server's loop.
    async with httpx.AsyncClient() as http:
        before = _stalls_over((await http.get(f"{server}/metrics")).text, "0.1")
        time.sleep(0.2)  # noqa: ASYNC251  (the stall under test)
        await asyncio.sleep(0.1)  # the watcher wakes, late, and records it
        after = _stalls_over((await http.get(f"{server}/metrics")).text, "0.1")
    assert after - before >= 1
