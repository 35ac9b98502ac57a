"""The `liveset` command: serve, dev, migrate, token."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import secrets
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn

from db.migrate import migrate_url
from liveset.asgi import create_app
from realtime.core.auth import mint
from realtime.core.settings import Settings, SettingsError, environment, from_env
from realtime.transport.http_protocol import UpgradeReleasingHttpToolsProtocol

DEV_HOME = Path(".liveset")
DEMO_USER = "demo"
_TTL = re.compile(r"^(\d+)([smhd]?)$")
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _fail(message: str) -> None:
    print(f"liveset: {message}", file=sys.stderr)
    raise SystemExit(2)


def _settings(env: dict[str, str]) -> Settings:
    try:
        return from_env(env)
    except SettingsError as exc:
        _fail(f"configuration error: {exc}")
        raise  # unreachable: _fail exits


class _Server(uvicorn.Server):
    """uvicorn, calling `on_started` once it listens and the app's startup is complete."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_started()


def _run(settings: Settings, on_started: Callable[[], None] = lambda: None) -> None:
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=UpgradeReleasingHttpToolsProtocol,
        # X-Forwarded-For is believed only from FORWARDED_ALLOW_IPS (uvicorn's own variable;
        # 127.0.0.1 when unset): from anyone, it would let a client pick its own address.
        proxy_headers=True,
        # Compression state is the largest part of an idle websocket's memory.
        ws_per_message_deflate=False,
        # Engine.IO's ping already finds dead clients; a second, websocket-level ping
        # per connection only doubled the idle work (10,000 idle connections: 19 -> 13 % CPU).
        ws_ping_interval=None,
        log_config=None,
        access_log=False,
        lifespan="on",
        # A client that never answers the close handshake must not hold a stop forever.
        timeout_graceful_shutdown=10,
    )
    _Server(config, on_started).run()


def _ttl(text: str) -> int:
    match = _TTL.match(text)
    if not match:
        _fail(f"--ttl must look like 3600, 90m, 12h or 7d, got {text!r}")
        raise AssertionError
    return int(match.group(1)) * _TTL_UNITS[match.group(2)]


def _dev_secret(home: Path) -> str:
    path = home / "jwt_secret"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


@contextlib.contextmanager
def dev_environment(env: dict[str, str], home: Path) -> Iterator[dict[str, str]]:
    """Fill in what `dev` needs: embedded servers for unset URLs, a local JWT secret."""
    from liveset.dev.embedded import EmbeddedPostgres, EmbeddedRedis

    env = dict(env)
    env.setdefault("HOST", "127.0.0.1")
    env.setdefault("LOG_FORMAT", "text")
    env.setdefault("WEB_APP", "1")
    if not env.get("JWT_SECRET") and not env.get("JWT_PUBLIC_KEY"):
        env["JWT_SECRET"] = _dev_secret(home)
    with contextlib.ExitStack() as stack:
        if not env.get("REDIS_URL"):
            redis = stack.enter_context(EmbeddedRedis(home / "valkey").start())
            env["REDIS_URL"] = redis.url
            print(f"  started Valkey      {redis.url}  (data in {home / 'valkey'})")
        else:
            print(f"  using REDIS_URL     {_without_password(env['REDIS_URL'])}")
        if not env.get("DATABASE_URL"):
            postgres = stack.enter_context(EmbeddedPostgres(home / "postgres").start())
            env["DATABASE_URL"] = postgres.create_database("liveset")
            print(f"  started PostgreSQL  {env['DATABASE_URL']}  (data in {home / 'postgres'})")
        else:
            print(f"  using DATABASE_URL  {_without_password(env['DATABASE_URL'])}")
        yield env


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def _banner(settings: Settings) -> None:
    url = f"http://{settings.host}:{settings.port}"
    print(f"\nliveset is running at {url}  (Socket.IO at {url}/socket.io/, REST at {url}/api/v1)")
    if settings.jwt_algorithm == "HS256":
        token = mint(settings.jwt_key, DEMO_USER, 24 * 3600, audience=settings.jwt_audience, issuer=settings.jwt_issuer)
        print(f"token for user '{DEMO_USER}', valid 24 h:\n\n{token}\n")
        if settings.web_app:
            print(f"open the web app, signed in as '{DEMO_USER}':\n\n{url}/#token={token}\n")
    print("Ctrl-C stops the server and everything it started.\n", flush=True)


def cmd_serve(args: argparse.Namespace) -> None:
    _run(_settings(environment()))


def cmd_dev(args: argparse.Namespace) -> None:
    print("liveset dev: starting")
    with dev_environment(environment(), args.home) as env:
        settings = _settings(env)
        applied = asyncio.run(migrate_url(settings.database_url))
        print(f"  migrations applied  {', '.join(applied) or 'none pending'}")
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises it after its graceful shutdown
            _run(settings, on_started=lambda: _banner(settings))
    print("liveset dev: stopped")


def cmd_migrate(args: argparse.Namespace) -> None:
    env = environment()
    if not env.get("DATABASE_URL"):
        _fail("configuration error: DATABASE_URL is required but not set")
    applied = asyncio.run(migrate_url(env["DATABASE_URL"]))
    print(f"migrations applied: {', '.join(applied) or 'none pending'}")


def cmd_token(args: argparse.Namespace) -> None:
    env = environment()
    secret = env.get("JWT_SECRET") or (_dev_secret(args.home) if (args.home / "jwt_secret").exists() else "")
    if not secret:
        _fail("token needs JWT_SECRET (or a dev secret: run `liveset dev` once)")
    print(mint(secret, args.user, _ttl(args.ttl), audience=env.get("JWT_AUDIENCE"), issuer=env.get("JWT_ISSUER")))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="liveset", description="Real-time workout session server")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the server, configured from the environment (production)")
    dev = commands.add_parser("dev", help="run on embedded Valkey and PostgreSQL unless REDIS_URL/DATABASE_URL are set")
    dev.add_argument("--home", type=Path, default=DEV_HOME, help="where dev data lives (default: .liveset)")
    commands.add_parser("migrate", help="apply pending database migrations to DATABASE_URL")
    token = commands.add_parser("token", help="mint an HS256 token for local use")
    token.add_argument("--user", required=True, help="the user id (the token's sub)")
    token.add_argument("--ttl", default="12h", help="lifetime: seconds, or with s/m/h/d (default 12h)")
    token.add_argument("--home", type=Path, default=DEV_HOME, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        {"serve": cmd_serve, "dev": cmd_dev, "migrate": cmd_migrate, "token": cmd_token}[args.command](args)
    except KeyboardInterrupt:  # Ctrl-C before the server took over signals: everything is stopped already
        raise SystemExit(130) from None

