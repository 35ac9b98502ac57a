"""The Starlette side: REST routes, CORS, and the process lifespan."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from realtime.live.services import Services

from . import problems
from .headers import SecurityHeaders
from .limits import RateLimit
from .routes import routes


def create_rest_app(
    services: Services, lifespan: Callable[[Starlette], AbstractAsyncContextManager[Any]]
) -> Starlette:
    # Outermost first: every response gets the headers, a preflight is answered before it
    # counts, and a request over the limit reaches no route.
    middleware = [Middleware(SecurityHeaders)]
    if services.settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware, allow_origins=list(services.settings.cors_origins),
                allow_headers=["Authorization", "Content-Type"], allow_methods=["GET", "DELETE"],
            )
        )
    middleware.append(Middleware(RateLimit, services=services))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers=problems.handlers)
    app.state.services = services
    return app
