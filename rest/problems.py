"""Errors as RFC 9457 problem documents (application/problem+json), with our `code`."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from realtime.core.errors import AppError, ErrorCode

from .headers import HEADERS

log = logging.getLogger("liveset.rest")

_STATUS: dict[str, int] = {
    "invalid_payload": 400, "unauthorized": 401, "forbidden": 403, "not_found": 404, "conflict": 409,
    "rate_limited": 429, "too_large": 413, "unavailable": 503, "internal": 500,
}
_TITLES: dict[int, str] = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 413: "Content Too Large", 429: "Too Many Requests", 500: "Internal Server Error",
    503: "Service Unavailable",
}


class InvalidParam(msgspec.Struct):
    name: str
    reason: str


class Problem(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    code: ErrorCode
    detail: str | None = None
    invalid_params: list[InvalidParam] | None = None


def problem(code: ErrorCode, detail: str, status: int | None = None, **extra: Any) -> Response:
    status = status or _STATUS[code]
    body = Problem(type="about:blank", title=_TITLES.get(status, "Error"), status=status, code=code, detail=detail,
                   **extra)
    # Also here, not only in rest/headers.py: Starlette answers a 500 outside every middleware.
    headers = {**HEADERS, **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/problem+json",
                    headers=headers)


def invalid(name: str, reason: str) -> AppError:
    return AppError("invalid_payload", f"{name}: {reason}", {"invalid_params": [InvalidParam(name, reason)]})


async def app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    params = (exc.details or {}).get("invalid_params") if isinstance(exc.details, dict) else None
    return problem(exc.code, exc.message, invalid_params=params)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code: ErrorCode = "not_found" if exc.status_code == 404 else "invalid_payload"
    return problem(code, str(exc.detail), status=exc.status_code)


async def unreachable(request: Request, exc: Exception) -> Response:
    log.warning("a dependency is unreachable", extra={"error": str(exc)})
    return problem("unavailable", "a dependency is unreachable; retry")


async def server_error(request: Request, exc: Exception) -> Response:
    log.error("request failed", exc_info=exc)
    return problem("internal", "internal error")


handlers = {
    AppError: app_error,
    HTTPException: http_error,
    OSError: unreachable,  # includes ConnectionError and TimeoutError
    asyncpg.InterfaceError: unreachable,
    asyncpg.CannotConnectNowError: unreachable,
    Exception: server_error,
}
