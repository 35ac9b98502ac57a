"""JWT verification, shared by the Socket.IO handshake and the REST side."""

from __future__ import annotations

import time

import jwt
import msgspec

from .fields import is_text
from .settings import Settings

# A token's `exp`: an integer NumericDate before the year 3000. PyJWT also takes a numeric
# string, a float or 1e308 (which no timer can wait for).
LATEST_EXP = 32_503_680_000


class AuthError(Exception):
    """The token is missing or not acceptable; the message is safe to show the client."""


class Claims(msgspec.Struct, frozen=True):
    user_id: str
    expires_at: float  # seconds since the epoch


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        # Algorithms come from configuration, never from the token header: this is
        # what refuses `alg: none` and HS256 tokens signed with a public key.
        self._algorithms = [settings.jwt_algorithm]
        self._key = settings.jwt_key
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        # exp is checked here, after its type: PyJWT reads `exp: true` as 1 and calls it expired.
        self._options = {"require": ["exp", "sub"], "verify_aud": settings.jwt_audience is not None,
                         "verify_exp": False}

    def verify(self, token: object) -> Claims:
        if not isinstance(token, str) or not token:
            raise AuthError("a token is required")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options=self._options,  # type: ignore[arg-type]
            )
        except jwt.InvalidSignatureError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        except jwt.DecodeError:
            # PyJWT's words for this name its decoder's internals ("'utf-8' codec can't decode ...").
            raise AuthError("invalid token: not a JWT (header.payload.signature, each base64url JSON)") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        sub = claims["sub"]
        if not isinstance(sub, str) or not 1 <= len(sub) <= 128 or not is_text(sub):
            raise AuthError("invalid token: sub must be a string of 1-128 characters, without NUL or lone surrogates")
        exp = claims["exp"]
        if type(exp) is not int or not 0 < exp <= LATEST_EXP:
            raise AuthError("invalid token: exp must be an integer NumericDate (seconds since the epoch) "
                            "before the year 3000")
        if exp <= time.time():
            raise AuthError("token expired")
        return Claims(user_id=sub, expires_at=float(exp))


def mint(secret: str, user_id: str, ttl_s: int, *, audience: str | None = None, issuer: str | None = None) -> str:
    """An HS256 token for local use (the `token` command, tests, load tests)."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl_s}
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")
