"""Every HTTP route, as a list."""

from __future__ import annotations

from starlette.routing import Route

from . import health

routes = [
    Route("/healthz", health.healthz, methods=["GET"]),
    Route("/readyz", health.readyz, methods=["GET"]),
    Route("/metrics", health.metrics, methods=["GET"]),
]
