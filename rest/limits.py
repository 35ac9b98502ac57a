"""The REST side's rate limit: per user, or per address for a request without a valid token,
shared by every process through Redis (lua/rate_take.lua). Only /api/ routes count: health
checks and /metrics are the platform's, not a client's.

A request over the limit gets 429 with `Retry-After` and a problem document, and reaches no
route. When Redis cannot answer, requests go through: the limit protects the service, and
refusing everything while Redis is away would be the outage it guards against.
"""

from __future__ import annotations

import logging
import math

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from realtime.core.auth import AuthError
from realtime.live.services import Services

from .auth import bearer_token
from .problems import problem

log = logging.getLogger("liveset.rest")

LIMITED = "/api/"


def caller(request: Request, services: Services) -> str:
    """Who a request counts against: the user of a valid token, else the client's address."""
    token = bearer_token(request)
    if token is not None:
        try:
            user = services.verifier.verify(token).user_id
            request.state.user_id = user  # rest/auth.py takes it: the token is verified once
            return "u:" + user
        except AuthError:
            pass
    return "a:" + (request.client.host if request.client else "")


class RateLimit:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(LIMITED):
            wait_ms = await self._take(caller(Request(scope), self.services))
            if wait_ms:
                seconds = math.ceil(wait_ms / 1000)
                response = problem("rate_limited", f"more than {self.services.settings.rest_rate_per_s:g} "
                                   f"requests/s; retry after {seconds} s")
                response.headers["Retry-After"] = str(seconds)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _take(self, who: str) -> int:
        settings, runtime = self.services.settings, self.services.runtime
        try:
            return await runtime.live.take_rate(runtime.live.keys.rest_rate(who), settings.rest_rate_per_s,
                                                settings.rest_rate_burst)
        except RedisError as exc:
            log.warning("rate limit not checked: Redis did not answer", extra={"error": str(exc)})
            return 0
