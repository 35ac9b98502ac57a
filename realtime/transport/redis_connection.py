"""A Redis connection of liveset's own: a loop turn's commands in one write, replies matched in order.

redis-py sends each command through its pool: a checkout, a retry wrapper, an
`asyncio.timeout` and a stream read per call — about 75 µs of this process's
CPU per call, against about 10 µs for a command written straight to a
connection whose replies, which Redis sends in command order, are parsed by
hiredis in `data_received` and handed to the waiting futures
(docs/performance.md); hiredis encodes the commands too. Used for the hot path only: the scripts
(script_line.py) and pub/sub (subscriber.py); everything else stays on redis-py.

A lost connection fails every waiting call, and so does a reply slower than
`timeout_s` (the connection is dropped), so an outage never hangs a caller.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import hiredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg: TypeAlias = str | bytes | int | float


def command(*args: Arg) -> bytes:
    """One command in RESP, encoded by hiredis in C (floats as repr, as redis-py writes them)."""
    packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]  # its stub takes a 1-tuple
    return packed


PushHandler = Callable[[bytes, bytes], None]


class Connection(asyncio.Protocol):
    """Commands out, replies matched in order; on a subscribed connection, `message` pushes to `on_push`."""

    def __init__(self, timeout_s: float, on_push: PushHandler | None = None) -> None:
        self.timeout_s = timeout_s
        self.on_push = on_push
        self.loop = asyncio.get_running_loop()
        self.ended: asyncio.Future[None] = self.loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(replyError=ResponseError, protocolError=InvalidResponse)
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.unsent: list[bytes] = []
        self.watchdog: asyncio.TimerHandle | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, command: bytes) -> asyncio.Future[Any]:
        if self.transport is None or self.transport.is_closing():
            raise RedisConnectionError("the Redis connection is closed")
        # uvloop writes to the socket at once when its buffer is empty: a system call per
        # command in this process and a read per command in Redis. The commands of one loop
        # turn leave together instead, at the start of the next.
        if not self.unsent:
            self.loop.call_soon(self._flush)
        self.unsent.append(command)
        future = self.loop.create_future()
        self.waiting.append((future, self.loop.time() + self.timeout_s))
        if self.watchdog is None:
            self.watchdog = self.loop.call_later(self.timeout_s, self._check)
        return future

    def _flush(self) -> None:
        unsent, self.unsent = self.unsent, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(unsent)
        # else: connection_lost fails the waiting calls (or already has)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            while (reply := self.reader.gets()) is not False:
                if self.on_push is not None and type(reply) is list and reply and reply[0] == b"message":
                    self.on_push(reply[1], reply[2])
                    continue
                future, _ = self.waiting.popleft()
                if future.done():  # its caller was cancelled; the reply still had to be read
                    continue
                if isinstance(reply, ResponseError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except (InvalidResponse, IndexError) as exc:  # not Redis speaking: nothing read after it can be trusted
            self._drop(RedisConnectionError(f"unreadable reply from Redis: {exc}"))

    def _check(self) -> None:
        self.watchdog = None
        if not self.waiting:
            return
        _, deadline = self.waiting[0]
        now = self.loop.time()
        if now >= deadline:
            self._drop(RedisTimeoutError(f"no reply from Redis within {self.timeout_s:g} s"))
        else:
            self.watchdog = self.loop.call_later(deadline - now, self._check)

    def _drop(self, error: BaseException) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._fail(error)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(RedisConnectionError(f"lost the Redis connection: {exc or 'closed'}"))

    def _fail(self, error: BaseException) -> None:
        self.lost = self.lost or error
        if not self.ended.done():
            self.ended.set_result(None)
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)


def options_of(url: str) -> Mapping[str, Any]:
    """A Redis URL as redis-py reads it (its client and this connection then agree on every form)."""
    return parse_url(url)


def _tls(options: Mapping[str, Any]) -> ssl.SSLContext:
    """The TLS context redis-py's own connection builds from the URL's ssl_* options
    (ssl_ca_certs, ssl_cert_reqs, ssl_certfile, ...), so both kinds of connection agree."""
    return SSLConnection(**{k: v for k, v in options.items() if k != "connection_class"}).ssl_context.get()


async def connect(
    options: Mapping[str, Any], protocol: Callable[[], Connection], connect_timeout_s: float
) -> Connection:
    """A connection as redis-py's URL options describe it (TCP, TLS or a unix socket; user, password, db)."""
    loop = asyncio.get_running_loop()
    kind = options.get("connection_class")
    try:
        async with asyncio.timeout(connect_timeout_s):
            if kind is UnixDomainSocketConnection:
                _, connection = await loop.create_unix_connection(protocol, options["path"])
            else:
                secure = _tls(options) if kind is SSLConnection else None
                _, connection = await loop.create_connection(
                    protocol, options.get("host", "localhost"), options.get("port", 6379), ssl=secure)
    except (OSError, TimeoutError) as exc:
        raise RedisConnectionError(f"cannot reach Redis: {exc}") from exc
    try:
        if options.get("password"):
            user = [options["username"]] if options.get("username") else []
            await connection.send(command(b"AUTH", *user, options["password"]))
        if options.get("db"):
            await connection.send(command(b"SELECT", options["db"]))
    except BaseException:
        if connection.transport is not None:
            connection.transport.close()
        raise
    return connection
