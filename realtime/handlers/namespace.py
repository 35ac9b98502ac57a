"""The Socket.IO edge: handshake auth, the dispatch table, one ack per event.

Event names like `set:complete` are not method names, so events are looked up
in a table (name -> payload Struct, handler). Each payload is converted once
with msgspec at this edge; past it no code sees a raw dict. Every client event
is answered with exactly one ack, whatever happens inside.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import msgspec
import socketio
from redis.exceptions import RedisError

from realtime.core import protocol as p
from realtime.core.auth import AuthError
from realtime.core.errors import AppError
from realtime.core.fields import TEXT
from realtime.live.fanout import REPLACED, user_room
from realtime.live.live_state import ConnectionGone, now_ms
from realtime.live.services import Services
from realtime.transport import engineio_websocket
from realtime.transport.socket_manager import Manager
from realtime.transport.socketio_server import Server, Unreadable

log = logging.getLogger("liveset.socket")

_AT = re.compile(r" - at `\$\.?([^`]*)`$")
_NAMED = re.compile(r"(?:unknown|missing required) field `([^`]*)`")
READY_AGAIN_BATCH = 200  # snapshots read at once when every connection gets session:ready again
_NUL = f"Expected `str` matching regex {TEXT!r}"


class Session:
    """One authenticated connection (one device). Slots: there are many of these."""

    __slots__ = ("sid", "user_id", "device_id", "expires_at", "expiry", "joined", "tokens", "refilled", "rooms")

    def __init__(self, sid: str, user_id: str, device_id: str, expires_at: float, burst: float) -> None:
        self.sid = sid
        self.user_id = user_id
        self.device_id = device_id
        self.expires_at = expires_at
        self.expiry: asyncio.TimerHandle | None = None
        self.joined = False  # subscribed to the user's fan-out channel
        self.tokens = burst  # the rate limit's bucket
        self.refilled = time.monotonic()
        self.rooms: set[str] = set()  # group rooms this device is present in

    def take(self, rate: float, burst: float) -> bool:
        """One event from the token bucket; False when the connection is over its rate."""
        now = time.monotonic()
        self.tokens = min(burst, self.tokens + (now - self.refilled) * rate)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


Handler = Callable[[Session, Any], Awaitable[Any]]


class Route(NamedTuple):
    payload: type[msgspec.Struct]
    handler: Handler


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"{text} is beyond a float")
    return number


def decode_json(data: str | bytes) -> Any:
    """JSON as a client sent it. msgspec refuses a lone UTF-16 surrogate (`"\\ud83d"`, half an
    emoji), which JavaScript's JSON.stringify writes: the standard library takes it, so that the
    event is answered, and the text rules of core/fields.py then refuse it by field. NaN, Infinity,
    numbers beyond a float and nesting deeper than the decoders go stay refused. Raises ValueError
    for what is not JSON."""
    try:
        try:
            return msgspec.json.decode(data)
        except msgspec.DecodeError:
            return json.loads(data, parse_constant=_refuse_constant, parse_float=_finite)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _printable(text: str) -> str:
    """Text that can be encoded back to a client (lone surrogates escaped)."""
    return text.encode("utf-8", "backslashreplace").decode()


class _MsgspecJson:
    """python-socketio's pluggable JSON module, backed by msgspec (Structs encode natively)."""

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return p.json_encoder.encode(obj).decode()

    @staticmethod
    def loads(data: str | bytes, **_: Any) -> Any:
        return decode_json(data)


def _event_of(body: Any) -> tuple[str, list[Any]] | AppError:
    """The name and arguments of an event as a client sent it (`["name", {...}]`), or what is wrong."""
    if isinstance(body, Unreadable):
        return AppError("invalid_payload", body.why)
    if type(body) is not list or not body:
        return AppError("invalid_payload", "an event is a JSON array: [name, payload]")
    if type(body[0]) is not str or not body[0]:
        return AppError("invalid_payload", "an event's name is a non-empty string")
    return body[0], body[1:]


def _invalid(exc: msgspec.ValidationError) -> AppError:
    """invalid_payload with `details.field`: the path msgspec gives, and the field it names when
    one is unknown or missing (its path is then the object's)."""
    message = _printable(str(exc).replace(_NUL, "Expected text without NUL (\\u0000) or a lone surrogate"))
    at, named = _AT.search(message), _NAMED.search(message)
    field = ".".join(m.group(1) for m in (at, named) if m and m.group(1))
    return AppError("invalid_payload", message, {"field": field} if field else None)


class Namespace:
    def __init__(self, services: Services, handlers: dict[str, Handler]) -> None:
        self.services = services
        settings = services.settings
        self.sio = Server(
            self._answer, decode_json,
            async_mode="asgi",
            client_manager=Manager(),
            cors_allowed_origins=list(settings.cors_origins) or [],
            max_http_buffer_size=settings.max_message_bytes,
            ping_interval=settings.ping_interval_s,
            ping_timeout=settings.ping_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
            json=_MsgspecJson,
            # Each message already has a task of its own (edge.py, or python-engineio's): none more.
            async_handlers=False,
            logger=False,
            engineio_logger=False,
        )
        engineio_websocket.install(self.sio.eio)
        self.sessions: dict[str, Session] = {}
        # Called with the session of every device that disconnects (rooms use it).
        self.disconnect_hooks: list[Callable[[Session], Awaitable[None]]] = []
        self.routes: dict[str, Route] = {}
        self.add_handlers({**handlers, "time:sync": self._time_sync, "auth:refresh": self._auth_refresh})
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)

    def add_handlers(self, handlers: dict[str, Handler]) -> None:
        self.routes.update({name: Route(p.CLIENT_EVENTS[name][0], handler) for name, handler in handlers.items()})

    # ---- connection lifecycle ---------------------------------------------

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        metrics = self.services.metrics
        try:
            handshake = msgspec.convert(auth, p.HandshakeAuth)
            claims = self.services.verifier.verify(handshake.token)
        except (msgspec.ValidationError, AuthError) as exc:
            metrics.connects.labels("refused").inc()
            message = str(exc) if isinstance(exc, AuthError) else f"auth must be {{token, device_id}}: {exc}"
            raise socketio.exceptions.ConnectionRefusedError(
                "unauthorized", msgspec.to_builtins(p.ConnectRefused(message=message))
            ) from None
        try:
            replaced = await self.services.runtime.devices.join(claims.user_id, sid, handshake.device_id)
        except AppError as exc:
            metrics.connects.labels("refused").inc()
            refusal = p.ConnectRefused(code=exc.code, message=exc.message,
                                       details=msgspec.UNSET if exc.details is None else exc.details)
            raise socketio.exceptions.ConnectionRefusedError(exc.code, msgspec.to_builtins(refusal)) from None
        if replaced is None:
            metrics.connects.labels("refused").inc()
            limit = self.services.settings.max_devices_per_user
            refusal = p.ConnectRefused(code="conflict", message=f"too many devices connected (limit {limit})")
            raise socketio.exceptions.ConnectionRefusedError("conflict", msgspec.to_builtins(refusal))
        session = Session(sid, claims.user_id, handshake.device_id, claims.expires_at,
                          self.services.settings.rate_burst)
        self.sessions[sid] = session
        self._schedule_expiry(session)
        metrics.connects.labels("accepted").inc()
        metrics.connections.inc()
        # python-socketio sends the CONNECT packet after this handler returns: anything
        # sent to the socket before that would reach the client ahead of it.
        loop = asyncio.get_running_loop()
        loop.create_task(self._ready(session))
        if replaced:
            loop.create_task(self._replace(claims.user_id, replaced))

    async def _replace(self, user_id: str, sids: list[str]) -> None:
        """Tell whichever process holds them, this one included, to end the device's earlier
        connections (fanout.py calls end_replaced there)."""
        runtime = self.services.runtime
        channel = runtime.live.keys.user_channel(user_id)
        try:
            for sid in sids:
                await runtime.redis.publish(channel, REPLACED + sid.encode())
        except RedisError:
            # Their entries are gone already, so they hold no place; each ends when its device leaves.
            log.warning("could not end a replaced connection")

    async def end_replaced(self, sid: str) -> None:
        """A newer connection of the same device took this one's place (one connection per
        device: no device_id opens more than one, so the limits per device hold per user)."""
        if sid in self.sessions:
            await self.sio.emit("session:expired", p.SessionExpired(reason="replaced"), to=sid)
            await self.sio.disconnect(sid)

    async def _ready(self, session: Session) -> None:
        """Join the user's fan-out, then send session:ready with the live snapshot.

        Joining first means no event is missed between the snapshot and the first
        delivered event; an event that arrives before session:ready has a seq the
        snapshot already includes, and the client skips it.
        """
        if self.sessions.get(session.sid) is not session:
            return
        session.joined = True
        runtime = self.services.runtime
        try:
            await runtime.fanout.join(session.user_id)
            if self.sessions.get(session.sid) is not session:
                return  # gone meanwhile: its disconnect left the channel again
            await self.sio.enter_room(session.sid, user_room(session.user_id))
        except Exception:
            log.exception("could not prepare session:ready; dropping the connection")
            await self.sio.disconnect(session.sid)
            return
        await self._send_ready(session)

    async def ready_again(self) -> None:
        """The process's pub/sub connection was lost and is back: events published meanwhile
        never reached its sockets, and when one was a workout's last, no later seq shows the
        gap. So each connection gets session:ready again, with the snapshot as it stands
        (docs/protocol.md: render it as after a connect, and join the rooms again)."""
        sessions = [s for s in list(self.sessions.values()) if s.joined]
        log.warning("pub/sub connection restored; sending session:ready again", extra={"sessions": len(sessions)})
        for start in range(0, len(sessions), READY_AGAIN_BATCH):
            await asyncio.gather(*(self._send_ready(s) for s in sessions[start:start + READY_AGAIN_BATCH]))

    async def _send_ready(self, session: Session) -> None:
        """session:ready with the user's live snapshot; a connection whose snapshot cannot be
        read is ended (the device reconnects and tries again).

        A newer connection of the device may have replaced this one while the word of it could
        not reach this process (before it listened to the user's channel, or while its pub/sub
        link was down): the snapshot is read only while the connection is still registered."""
        runtime = self.services.runtime
        try:
            snapshot = await runtime.live.active_snapshot(
                session.user_id, runtime.devices.entry(session.user_id, session.sid))
        except ConnectionGone:
            await self.end_replaced(session.sid)
            return
        except Exception:
            log.exception("could not prepare session:ready; dropping the connection")
            await self.sio.disconnect(session.sid)
            return
        if self.sessions.get(session.sid) is not session:
            return
        ready = p.SessionReady(
            user_id=session.user_id, device_id=session.device_id, server_time=now_ms(),
            active_workout=snapshot,  # type: ignore[arg-type]  # the snapshot's JSON, as Lua wrote it
        )
        await self.sio.emit("session:ready", ready, to=session.sid)

    async def _disconnect(self, sid: str, reason: Any = None) -> None:
        session = self.sessions.pop(sid, None)
        if session is None:
            return
        if session.expiry is not None:
            session.expiry.cancel()
        self.services.metrics.connections.dec()
        runtime = self.services.runtime
        for hook in self.disconnect_hooks:
            await hook(session)
        if session.joined:
            await runtime.fanout.leave(session.user_id)
        await runtime.devices.leave(session.user_id, sid)

    def _schedule_expiry(self, session: Session) -> None:
        # A timer handle per connection, not a task: cheap, and nothing runs until it is due.
        if session.expiry is not None:
            session.expiry.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, session.expires_at - time.time())
        session.expiry = loop.call_later(delay, lambda: loop.create_task(self._expire(session.sid)))

    async def _expire(self, sid: str) -> None:
        session = self.sessions.get(sid)
        if session is None:
            return
        if session.expires_at > time.time():
            # uvloop counts a timer from the start of the loop turn that set it, so it can fire
            # a little before `exp` by the wall clock: wait for the rest.
            self._schedule_expiry(session)
            return
        await self.sio.emit("session:expired", p.SessionExpired(reason="token_expired"), to=sid)
        await self.sio.disconnect(sid)

    # ---- events -----------------------------------------------------------

    async def _answer(self, sid: str, body: Any) -> bytes:
        """Every client event (transport/socketio_server.py): the arguments of its one ack."""
        return p.json_encoder.encode([await self._dispatch(sid, body)])

    async def _dispatch(self, sid: str, body: Any) -> p.OkAck | p.ErrorAck:
        started = time.perf_counter()
        event = _event_of(body)
        route = None if isinstance(event, AppError) else self.routes.get(event[0])
        label = "unknown" if route is None or isinstance(event, AppError) else event[0]
        outcome = "ok"
        try:
            session = self.sessions.get(sid)
            if session is None:
                raise AppError("unauthorized", "not connected")
            settings = self.services.settings
            if not session.take(settings.rate_per_s, settings.rate_burst):
                raise AppError("rate_limited", f"more than {settings.rate_per_s:g} events/s; slow down",
                               {"retry_after_ms": int(1000 / settings.rate_per_s)})
            if isinstance(event, AppError):  # refused only now: it took its token like any other
                raise event
            name, args = event
            if route is None:
                raise AppError("invalid_payload", f"unknown event {_printable(repr(name[:64]))}",
                               {"event": _printable(name[:64])})
            payload = self._decode(route.payload, args)
            return p.OkAck(data=await route.handler(session, payload))
        except AppError as exc:
            outcome = exc.code
            return p.ErrorAck(error=p.ErrorBody(code=exc.code, message=exc.message, details=exc.details))
        except RedisError:  # a step not wrapped in its own AppError: Redis is restarting or failing over
            outcome = "unavailable"
            return p.ErrorAck(error=p.ErrorBody(code="unavailable", message="live state is unreachable; retry"))
        except Exception:
            outcome = "internal"
            log.exception("handler failed", extra={"event": label})
            return p.ErrorAck(error=p.ErrorBody(code="internal", message="internal error"))
        finally:
            self.services.metrics.event_handled(label, outcome, time.perf_counter() - started)

    def _decode(self, payload_type: type[msgspec.Struct], args: list[Any]) -> Any:
        if len(args) > 1:
            raise AppError("invalid_payload", "send one payload object")
        raw = args[0] if args else {}
        if not isinstance(raw, dict):
            raise AppError("invalid_payload", "payload must be an object")
        limit = self.services.settings.max_payload_bytes
        try:
            size = len(p.json_encoder.encode(raw))
        except UnicodeEncodeError:  # a lone surrogate (decode_json): the text rules refuse it below
            size = len(json.dumps(raw))
        if size > limit:
            raise AppError("too_large", f"payload is larger than {limit} bytes", {"limit": limit})
        try:
            return msgspec.convert(raw, payload_type)
        except msgspec.ValidationError as exc:
            raise _invalid(exc) from None
        except UnicodeEncodeError:  # msgspec names an unknown field: one whose name is half an emoji
            raise AppError("invalid_payload", "a field name holds a lone surrogate") from None

    async def _time_sync(self, session: Session, payload: p.TimeSyncRequest) -> p.TimeSyncReply:
        return p.TimeSyncReply(server_time=now_ms())

    async def _auth_refresh(self, session: Session, payload: p.AuthRefresh) -> p.AuthRefreshed:
        try:
            claims = self.services.verifier.verify(payload.token)
        except AuthError as exc:
            raise AppError("unauthorized", str(exc)) from None
        if claims.user_id != session.user_id:
            raise AppError("forbidden", "the new token is for another user")
        session.expires_at = claims.expires_at
        self._schedule_expiry(session)
        return p.AuthRefreshed(expires_at=int(claims.expires_at * 1000))
