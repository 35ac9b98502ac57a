"""Bearer JWT on every /api/v1 route: the same verification as the socket handshake."""

from __future__ import annotations

from starlette.requests import Request

from realtime.core.auth import AuthError
from realtime.core.errors import AppError
from realtime.live.services import Services


def user_id(request: Request) -> str:
    verified: str | None = getattr(request.state, "user_id", None)  # rest/limits.py verified it already
    if verified is not None:
        return verified
    services: Services = request.app.state.services
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AppError("unauthorized", "send Authorization: Bearer <token>")
    try:
        return services.verifier.verify(token.strip()).user_id
    except AuthError as exc:
        raise AppError("unauthorized", str(exc)) from None
