"""Liveness, readiness and metrics: what a process manager and Prometheus poll."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from realtime.live.services import Services

_CHECK_TIMEOUT_S = 2.0


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _redis_ok(services: Services) -> bool:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S):
            return bool(await services.runtime.redis.ping())
    except Exception:
        return False


async def _postgres_ok(services: Services) -> bool:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S):
            return bool(await services.runtime.db.fetchval("SELECT 1") == 1)
    except Exception:
        return False


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    redis_ok, postgres_ok = await asyncio.gather(_redis_ok(services), _postgres_ok(services))
    failed = [name for name, ok in (("redis", redis_ok), ("postgres", postgres_ok)) if not ok]
    if failed:
        return JSONResponse({"status": "unavailable", "failed": failed}, status_code=503)
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    return Response(services.metrics.render(), media_type=services.metrics.content_type)
