"""The Procfile's web process: production entry, JSON logs, killable with -9."""

from __future__ import annotations

import json

import httpx

from .clients import Device, token


async def test_web_process_serves_sockets_and_rest(spawn) -> None:
    web = await spawn(LOG_LEVEL="INFO")
    secret_token = token("proc-user")
    device = await Device().connect(web.url, {"token": secret_token, "device_id": "phone"})
    try:
        (ready,) = await device.wait_for("session:ready")
        assert ready["user_id"] == "proc-user"
    finally:
        await device.close()
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{web.url}/readyz")).json() == {"status": "ready"}
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it so the exit status tells why.
    assert web.stop() == -15
    entries = [json.loads(line) for line in web.log().splitlines() if line.strip()]  # JSON lines, nothing else
    assert all({"ts", "level", "logger", "msg"} <= entry.keys() for entry in entries)
    assert [e["msg"] for e in entries if e["logger"] == "liveset"] == ["liveset started", "liveset stopped"]
    assert not [e for e in entries if e["msg"] in ("connection open", "connection closed")]  # no per-socket lines
    assert secret_token not in web.log()


async def test_log_level_applies_to_uvicorn_too(spawn) -> None:
    web = await spawn(LOG_LEVEL="WARNING")
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{web.url}/healthz")).status_code == 200
    web.stop()
    assert [json.loads(line) for line in web.log().splitlines() if line.strip()] == []  # nothing at INFO


async def test_web_process_dies_on_kill_9(spawn) -> None:
    web = await spawn()
    web.kill9()
    assert web.proc is not None and web.proc.returncode == -9
