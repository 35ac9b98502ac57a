"""Every payload of the wire protocol as a msgspec Struct (see docs/protocol.md).

Client->server payloads reject unknown fields; server->client payloads are
encoded once. New fields always get defaults, so older clients keep working.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from .errors import ErrorCode

DeviceId = Annotated[str, Meta(min_length=1, max_length=64)]
Token = Annotated[str, Meta(min_length=1, max_length=8192)]


# ---- acks ----------------------------------------------------------------

class ErrorBody(Struct, omit_defaults=True):
    code: ErrorCode
    message: str
    details: Any = None


class OkAck(Struct):
    data: Any
    ok: bool = True


class ErrorAck(Struct):
    error: ErrorBody
    ok: bool = False


# ---- connection ------------------------------------------------------------

class HandshakeAuth(Struct, forbid_unknown_fields=False):
    """The Socket.IO handshake's `auth`; clients may add fields of their own."""

    token: Token
    device_id: DeviceId


class ConnectRefused(Struct):
    message: str
    code: ErrorCode = "unauthorized"


class SessionReady(Struct):
    user_id: str
    device_id: str
    server_time: int
    active_workout: Any | None


class SessionExpired(Struct):
    reason: str


class TimeSyncRequest(Struct, forbid_unknown_fields=True):
    pass


class TimeSyncReply(Struct):
    server_time: int


class AuthRefresh(Struct, forbid_unknown_fields=True):
    token: Token


class AuthRefreshed(Struct):
    expires_at: int


# ---- the event tables: the single source for dispatch and for docs/protocol.md ----

# client -> server: event name -> (payload, ack data)
CLIENT_EVENTS: dict[str, tuple[type[Struct], type[Struct]]] = {
    "time:sync": (TimeSyncRequest, TimeSyncReply),
    "auth:refresh": (AuthRefresh, AuthRefreshed),
}

# server -> client: event name -> payload
SERVER_EVENTS: dict[str, type[Struct]] = {
    "session:ready": SessionReady,
    "session:expired": SessionExpired,
}

json_encoder = msgspec.json.Encoder()
