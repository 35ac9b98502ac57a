"""The REST side's rate limit (per user, per address without a valid token, shared by processes)
and the security headers on every response."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from rest.headers import HEADERS
from rest.problems import problem

from .conftest import make_settings
from .servers import in_process
from .test_rest import bearer


async def statuses(http: httpx.AsyncClient, count: int, path: str, headers: dict[str, str]) -> list[httpx.Response]:
    return list(await asyncio.gather(*(http.get(path, headers=headers) for _ in range(count))))


async def test_a_user_over_the_limit_gets_429_on_every_process_and_others_are_untouched(
    redis_url: str, database_url: str
) -> None:
    settings = make_settings(redis_url, database_url, rest_rate_per_s=2.0, rest_rate_burst=5)
    noisy, quiet = f"noisy-{uuid.uuid4().hex[:8]}", f"quiet-{uuid.uuid4().hex[:8]}"
    # Two processes of one deployment: one Redis prefix.
    async with in_process(settings) as one, in_process(settings) as two, httpx.AsyncClient() as http:
        first = await statuses(http, 3, f"{one}/api/v1/workouts", bearer(noisy))
        second = await statuses(http, 4, f"{two}/api/v1/workouts", bearer(noisy))
        codes = sorted(r.status_code for r in first + second)
        assert codes == [200] * 5 + [429] * 2, codes  # a burst of 5, counted across both
        refused = next(r for r in first + second if r.status_code == 429)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "rate_limited" and refused.json()["status"] == 429
        assert refused.headers["Retry-After"] == "1"  # 500 ms at most to wait, in whole seconds
        assert all(r.status_code == 200 for r in await statuses(http, 5, f"{one}/api/v1/workouts", bearer(quiet)))
        await asyncio.sleep(float(refused.headers["Retry-After"]))
        assert (await http.get(f"{two}/api/v1/workouts", headers=bearer(noisy))).status_code == 200
        # The platform's own routes do not count.
        assert all(r.status_code == 200 for r in await statuses(http, 20, f"{one}/healthz", {}))


async def test_requests_without_a_valid_token_count_against_their_address(redis_url: str, database_url: str) -> None:
    settings = make_settings(redis_url, database_url, rest_rate_per_s=1.0, rest_rate_burst=3)
    async with in_process(settings) as url, httpx.AsyncClient(base_url=url) as http:
        forged = {"Authorization": "Bearer not-a-token"}
        codes = [r.status_code for r in await statuses(http, 5, "/api/v1/workouts", forged)]
        assert sorted(codes) == [401, 401, 401, 429, 429], codes
        # The address's allowance is spent; a user's own is not.
        assert (await http.get("/api/v1/workouts", headers=bearer(f"u-{uuid.uuid4().hex[:8]}"))).status_code == 200


@pytest.mark.parametrize(("method", "path", "auth", "status"), [
    ("GET", "/api/v1/workouts", True, 200),
    ("GET", "/api/v1/workouts", False, 401),
    ("GET", f"/api/v1/workouts/{uuid.uuid4()}", True, 404),
    ("DELETE", "/api/v1/rooms", True, 405),
    ("GET", "/healthz", False, 200),
    ("GET", "/openapi.json", False, 200),
])
async def test_every_response_carries_the_security_headers(server: str, method: str, path: str, auth: bool,
                                                           status: int) -> None:
    async with httpx.AsyncClient(base_url=server) as http:
        response = await http.request(method, path, headers=bearer("u1") if auth else {})
    assert response.status_code == status
    for name, value in HEADERS.items():
        assert response.headers[name] == value, name
    assert (response.headers.get("Cache-Control") == "no-store") == path.startswith("/api/")


def test_a_server_error_carries_the_headers_too() -> None:
    """Starlette answers a 500 outside every middleware: the problem document brings them itself."""
    response = problem("internal", "internal error")
    assert response.status_code == 500
    assert all(response.headers[name] == value for name, value in HEADERS.items())
