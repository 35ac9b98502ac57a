"""Bearer JWT on every /api/v1 route: the same verification as the socket handshake."""

from __future__ import annotations

from starlette.requests import Request

from realtime.core.auth import AuthError
from realtime.core.errors import AppError
from realtime.live.services import Services


def bearer_token(request: Request) -> str | None:
    """The token of `Authorization: Bearer <token>`, if the request has one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def user_id(request: Request) -> str:
    verified: str | None = getattr(request.state, "user_id", None)  # rest/limits.py verified it already
    if verified is not None:
        return verified
    services: Services = request.app.state.services
    token = bearer_token(request)
    if token is None:
        raise AppError("unauthorized", "send Authorization: Bearer <token>")
    try:
        return services.verifier.verify(token).user_id
    except AuthError as exc:
        raise AppError("unauthorized", str(exc)) from None
