"""Configuration: the only module that reads the environment.

A missing or malformed variable raises SettingsError naming it, so a
misconfigured process stops at start instead of failing on the first event.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

import msgspec

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")


class SettingsError(Exception):
    """A configuration variable is missing or malformed; the message names it."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    redis_url: str
    database_url: str
    jwt_algorithm: str
    jwt_key: str  # the HS256 secret, or the PEM public key for RS256/ES256
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    port: int = 8000
    host: str = "127.0.0.1"
    cors_origins: tuple[str, ...] = ()
    log_level: LogLevel = "INFO"
    log_format: Literal["json", "text"] = "json"
    # Prefix of every Redis key and channel; lets several deployments (or tests) share one Redis.
    redis_prefix: str = "ls:"
    # Largest websocket message read at all; a larger one closes the connection (1009). Engine.IO's
    # own default, so that anything an app may mean to send gets a `too_large` ack it can show.
    max_message_bytes: int = 1024 * 1024
    # Largest event payload a handler accepts; larger ones get a `too_large` ack.
    max_payload_bytes: int = 16 * 1024
    # Events kept per workout for workout:sync; a device further behind gets a snapshot.
    workout_log_cap: int = 1000
    # A live workout with no activity for this long is ended: completed when it has
    # sets, discarded when it has none.
    workout_idle_s: int = 12 * 3600
    # An ended workout's live state (its event log, the acks repeats get, its sets) stays this
    # long for retries and late syncs; then it is only in the history (a completed one).
    ended_keep_s: int = 600
    # Packets queued for one socket before it counts as not reading and is cut off.
    max_queued_packets: int = 1000
    # Members a new group room may have.
    max_room_members: int = 50
    # Distinct devices a user may have connected at once, across processes.
    max_devices_per_user: int = 10
    # A user's connects, across devices and processes: `connect_burst` back to back (a restart
    # reconnects every device at once), then `connect_rate_per_s`.
    connect_rate_per_s: float = 2.0
    connect_burst: int = 20
    # Per connection: a token bucket of `rate_burst` events refilled at `rate_per_s`.
    rate_per_s: float = 20.0
    rate_burst: int = 60
    # What one user's devices together may make Redis do, across processes: cost units a second
    # and in a row (a unit: one plain step such as a set; live_state.py, BUDGET_PER_S).
    user_budget_per_s: float = 10.0
    user_budget_burst: int = 200
    # The REST side's /api/ routes, per user (per address without a valid token), across processes.
    rest_rate_per_s: float = 10.0
    rest_rate_burst: int = 30
    # Engine.IO's heartbeat: a ping every `ping_interval_s`; no pong within `ping_timeout_s`
    # and the connection is dead (a phone gone without a FIN): its device leaves.
    ping_interval_s: float = 25.0
    ping_timeout_s: float = 20.0
    # A connection still without a Socket.IO session this long after it opened (or after its
    # session ended) is closed.
    connect_timeout_s: float = 15.0
    # The workout web app at / (liveset/web_app.py); `liveset dev` turns it on.
    web_app: bool = False


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is required but not set")
    return value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str:
    value = _required(env, name)
    if not value.startswith(tuple(f"{s}://" for s in schemes)):
        raise SettingsError(f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
    return value


def _jwt(env: Mapping[str, str]) -> tuple[str, str]:
    algorithm = env.get("JWT_ALGORITHM", "").strip() or "HS256"
    if algorithm == "HS256":
        secret = _required(env, "JWT_SECRET")
        if len(secret.encode()) < 32:
            raise SettingsError("JWT_SECRET must be at least 32 bytes long")
        return algorithm, secret
    if algorithm in ASYMMETRIC_ALGORITHMS:
        key = _required(env, "JWT_PUBLIC_KEY").replace("\\n", "\n")
        if "-----BEGIN PUBLIC KEY-----" not in key:
            raise SettingsError("JWT_PUBLIC_KEY must be a PEM public key (-----BEGIN PUBLIC KEY-----)")
        return algorithm, key
    raise SettingsError(f"JWT_ALGORITHM must be HS256, RS256 or ES256, got {algorithm!r}")


def environment() -> dict[str, str]:
    """A copy of the process environment, for commands that add defaults before from_env."""
    return dict(os.environ)


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    algorithm, key = _jwt(env)
    level = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    log_format = env.get("LOG_FORMAT", "json").strip() or "json"
    if log_format not in ("json", "text"):
        raise SettingsError(f"LOG_FORMAT must be json or text, got {log_format!r}")
    origins = tuple(o.strip() for o in env.get("CORS_ORIGINS", "").split(",") if o.strip())
    return Settings(
        redis_url=_url(env, "REDIS_URL", ("redis", "rediss", "unix")),
        database_url=_url(env, "DATABASE_URL", ("postgres", "postgresql")),
        jwt_algorithm=algorithm,
        jwt_key=key,
        jwt_audience=env.get("JWT_AUDIENCE") or None,
        jwt_issuer=env.get("JWT_ISSUER") or None,
        port=_int(env, "PORT", 8000, 1, 65535),
        host=env.get("HOST", "0.0.0.0"),
        cors_origins=origins,
        log_level=level,  # type: ignore[arg-type]
        log_format=log_format,  # type: ignore[arg-type]
        redis_prefix=env.get("REDIS_PREFIX", "ls:"),
        max_payload_bytes=_int(env, "MAX_PAYLOAD_BYTES", 16 * 1024, 256, 1024 * 1024),
        max_message_bytes=_int(env, "MAX_MESSAGE_BYTES", 1024 * 1024, 64 * 1024, 16 * 1024 * 1024),
        workout_log_cap=_int(env, "WORKOUT_LOG_CAP", 1000, 10, 100_000),
        workout_idle_s=_int(env, "WORKOUT_IDLE_TIMEOUT_S", 12 * 3600, 60, 30 * 86400),
        ended_keep_s=_int(env, "ENDED_WORKOUT_KEEP_S", 600, 1, 7 * 86400),
        max_queued_packets=_int(env, "MAX_QUEUED_PACKETS", 1000, 10, 1_000_000),
        max_room_members=_int(env, "MAX_ROOM_MEMBERS", 50, 2, 1000),
        max_devices_per_user=_int(env, "MAX_DEVICES_PER_USER", 10, 1, 1000),
        connect_rate_per_s=_int(env, "CONNECT_RATE_LIMIT_PER_S", 2, 1, 100_000),
        connect_burst=_int(env, "CONNECT_RATE_LIMIT_BURST", 20, 1, 1_000_000),
        rate_per_s=_int(env, "RATE_LIMIT_PER_S", 20, 1, 100_000),
        rate_burst=_int(env, "RATE_LIMIT_BURST", 60, 1, 1_000_000),
        user_budget_per_s=_int(env, "USER_BUDGET_PER_S", 10, 1, 100_000),
        user_budget_burst=_int(env, "USER_BUDGET_BURST", 200, 1, 1_000_000),
        rest_rate_per_s=_int(env, "REST_RATE_LIMIT_PER_S", 10, 1, 100_000),
        rest_rate_burst=_int(env, "REST_RATE_LIMIT_BURST", 30, 1, 1_000_000),
        ping_interval_s=_int(env, "PING_INTERVAL_S", 25, 1, 3600),
        ping_timeout_s=_int(env, "PING_TIMEOUT_S", 20, 1, 3600),
        connect_timeout_s=_int(env, "CONNECT_TIMEOUT_S", 15, 1, 3600),
        web_app=bool(_int(env, "WEB_APP", 0, 0, 1)),
    )
