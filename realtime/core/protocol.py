"""Every payload of the wire protocol as a msgspec Struct (see docs/protocol.md).

Client->server payloads reject unknown fields; server->client payloads are
encoded once. New fields always get defaults, so older clients keep working.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from .errors import ErrorCode
from .fields import (
    TEXT,
    DeviceId,
    DistanceM,
    DurationS,
    EpochMs,
    ExerciseId,
    Name,
    Notes,
    RecordType,
    Reps,
    Rpe,
    SetType,
    Token,
    WeightKg,
)

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
    details: Any | UnsetType = UNSET  # rate_limited: {retry_after_ms}


class SessionReady(Struct):
    user_id: str
    device_id: str
    server_time: int
    active_workout: WorkoutSnapshot | None


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


# ---- live workouts: client -> server ------------------------------------------

class PlanItem(Struct, forbid_unknown_fields=True):
    exercise_id: ExerciseId
    sets: Annotated[int, Meta(ge=1, le=100)] | None = None
    reps: Reps | None = None
    weight_kg: WeightKg | None = None
    rest_s: Annotated[float, Meta(ge=0, le=3600)] | None = None


class WorkoutStart(Struct, forbid_unknown_fields=True):
    workout_id: uuid.UUID
    name: Name | None = None
    plan: Annotated[list[PlanItem], Meta(max_length=100)] | None = None
    room_id: uuid.UUID | None = None


class WorkoutRef(Struct, forbid_unknown_fields=True):
    """workout:pause, workout:resume, workout:discard, rest:skip."""

    workout_id: uuid.UUID


class WorkoutComplete(Struct, forbid_unknown_fields=True):
    workout_id: uuid.UUID
    notes: Notes | None = None


class SetComplete(Struct, forbid_unknown_fields=True):
    workout_id: uuid.UUID
    set_id: uuid.UUID
    exercise_id: ExerciseId
    weight_kg: WeightKg | None = None
    reps: Reps | None = None
    duration_s: DurationS | None = None
    distance_m: DistanceM | None = None
    rpe: Rpe | None = None
    set_type: SetType = "normal"
    completed_at: EpochMs | None = None
    notes: Notes | None = None


class SetUpdate(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Only the fields sent change; null clears an optional field."""

    workout_id: uuid.UUID
    set_id: uuid.UUID
    exercise_id: ExerciseId | UnsetType = UNSET
    weight_kg: WeightKg | None | UnsetType = UNSET
    reps: Reps | None | UnsetType = UNSET
    duration_s: DurationS | None | UnsetType = UNSET
    distance_m: DistanceM | None | UnsetType = UNSET
    rpe: Rpe | None | UnsetType = UNSET
    set_type: SetType | UnsetType = UNSET
    completed_at: EpochMs | UnsetType = UNSET
    notes: Notes | None | UnsetType = UNSET


class SetDelete(Struct, forbid_unknown_fields=True):
    workout_id: uuid.UUID
    set_id: uuid.UUID


class RestStart(Struct, forbid_unknown_fields=True):
    workout_id: uuid.UUID
    duration_s: Annotated[float, Meta(gt=0, le=3600)]
    exercise_id: ExerciseId | None = None


class RestAdjust(Struct, forbid_unknown_fields=True):
    workout_id: uuid.UUID
    delta_s: Annotated[float, Meta(ge=-3600, le=3600)]


class WorkoutSync(Struct, forbid_unknown_fields=True):
    workout_id: uuid.UUID
    since_seq: Annotated[int, Meta(ge=0, le=2**53)]  # a seq is a Lua number: exact up to 2^53


# ---- live workouts: server -> client -------------------------------------------
# Encoded by the Lua scripts (one encoding per event, see lua/_lib.lua); these
# Structs document the shapes and the tests decode every event with them, strictly.

class SetRecord(Struct):
    """A logged set as every device shows it: all fields present, null when not given."""

    set_id: str
    exercise_id: str
    set_type: SetType
    weight_kg: float | None
    reps: int | None
    duration_s: float | None
    distance_m: float | None
    rpe: float | None
    notes: str | None
    completed_at: int


class Stats(Struct):
    set_count: int
    total_volume_kg: float
    duration_s: int
    avg_rpe: float | None


class Record(Struct, omit_defaults=True):
    """A personal record held by a set of this workout. `weight_kg` only for max_reps."""

    type: RecordType
    value: float
    previous: float | None
    set_id: str
    weight_kg: float | None = None


class RestState(Struct):
    status: Literal["running", "skipped", "finished"]
    started_at: int
    ends_at: int
    duration_s: float
    exercise_id: str | None


class WorkoutSnapshot(Struct):
    workout_id: str
    name: str | None
    status: Literal["live", "paused", "completing", "completed", "discarded"]
    started_at: int
    paused_at: int | None
    ended_at: int | None
    room_id: str | None
    plan: list[PlanItem] | None
    seq: int
    sets: list[SetRecord]
    stats: Stats
    rest: RestState | None
    records: list[Record]


class WorkoutStarted(Struct):
    workout_id: str
    seq: int
    workout: WorkoutSnapshot


class WorkoutPaused(Struct):
    """workout:paused and workout:resumed."""

    workout_id: str
    seq: int
    at: int


class Summary(Struct):
    duration_s: int
    total_volume_kg: float
    set_count: int
    exercise_count: int
    prs: list[Record]


class WorkoutCompleted(Struct):
    workout_id: str
    seq: int
    summary: Summary


class WorkoutDiscarded(Struct):
    workout_id: str
    seq: int


class SetCompleted(Struct):
    """set:completed and set:updated; `records` are the exercise's records in this workout now."""

    workout_id: str
    seq: int
    set: SetRecord
    stats: Stats
    records: list[Record]


class SetDeleted(Struct):
    workout_id: str
    seq: int
    set_id: str
    exercise_id: str
    stats: Stats
    records: list[Record]


class PrAchieved(Struct):
    workout_id: str
    seq: int
    set_id: str
    exercise_id: str
    records: list[Record]


class RestTimer(Struct):
    workout_id: str
    seq: int
    status: Literal["running", "skipped", "finished"]
    started_at: int
    ends_at: int
    duration_s: float
    exercise_id: str | None
    server_time: int


class SyncedEvent(Struct):
    event: str
    data: dict[str, Any]


class SyncReply(Struct, omit_defaults=True):
    """Either every event after since_seq, or (when the log no longer reaches back) a snapshot."""

    events: list[SyncedEvent] | None = None
    snapshot: WorkoutSnapshot | None = None
    seq: int | None = None


# ---- group rooms -------------------------------------------------------------

RoomName = Annotated[str, Meta(min_length=1, max_length=100, pattern=TEXT)]
InviteCode = Annotated[str, Meta(min_length=1, max_length=64, pattern=TEXT)]


class RoomCreate(Struct, forbid_unknown_fields=True):
    name: RoomName


class RoomJoin(Struct, forbid_unknown_fields=True):
    """By invite code (anyone), or by room_id (members, e.g. after reconnecting)."""

    invite_code: InviteCode | None = None
    room_id: uuid.UUID | None = None


class RoomRef(Struct, forbid_unknown_fields=True):
    """room:leave, room:rotate_invite."""

    room_id: uuid.UUID


class RoomRemove(Struct, forbid_unknown_fields=True):
    room_id: uuid.UUID
    user_id: Annotated[str, Meta(min_length=1, max_length=128, pattern=TEXT)]


class Room(Struct):
    room_id: str
    name: str
    invite_code: str
    owner_id: str


class InviteRotated(Struct):
    room: Room


class PresenceEntry(Struct):
    user_id: str
    device_count: int
    workout_id: str | None


class RoomJoined(Struct):
    room: Room
    presence: list[PresenceEntry]


class RoomLeft(Struct):
    room_id: str


class RoomPresence(Struct):
    room_id: str
    joins: list[PresenceEntry]
    leaves: list[PresenceEntry]


class RoomActivity(Struct):
    room_id: str
    user_id: str
    type: Literal["workout_started", "set_completed", "pr_achieved", "workout_completed"]
    data: dict[str, Any]


# ---- the event tables: the single source for dispatch and for docs/protocol.md ----

# client -> server: event name -> (payload, ack data)
CLIENT_EVENTS: dict[str, tuple[type[Struct], type[Struct]]] = {
    "workout:start": (WorkoutStart, WorkoutStarted),
    "workout:pause": (WorkoutRef, WorkoutPaused),
    "workout:resume": (WorkoutRef, WorkoutPaused),
    "workout:complete": (WorkoutComplete, WorkoutCompleted),
    "workout:discard": (WorkoutRef, WorkoutDiscarded),
    "set:complete": (SetComplete, SetCompleted),
    "set:update": (SetUpdate, SetCompleted),
    "set:delete": (SetDelete, SetDeleted),
    "rest:start": (RestStart, RestTimer),
    "rest:adjust": (RestAdjust, RestTimer),
    "rest:skip": (WorkoutRef, RestTimer),
    "workout:sync": (WorkoutSync, SyncReply),
    "room:create": (RoomCreate, RoomJoined),
    "room:join": (RoomJoin, RoomJoined),
    "room:leave": (RoomRef, RoomLeft),
    "room:rotate_invite": (RoomRef, InviteRotated),
    "room:remove": (RoomRemove, RoomLeft),
    "time:sync": (TimeSyncRequest, TimeSyncReply),
    "auth:refresh": (AuthRefresh, AuthRefreshed),
}

# server -> client: event name -> payload
SERVER_EVENTS: dict[str, type[Struct]] = {
    "session:ready": SessionReady,
    "session:expired": SessionExpired,
    "workout:started": WorkoutStarted,
    "workout:paused": WorkoutPaused,
    "workout:resumed": WorkoutPaused,
    "workout:completed": WorkoutCompleted,
    "workout:discarded": WorkoutDiscarded,
    "set:completed": SetCompleted,
    "set:updated": SetCompleted,
    "set:deleted": SetDeleted,
    "pr:achieved": PrAchieved,
    "rest:timer": RestTimer,
    "room:presence": RoomPresence,
    "room:activity": RoomActivity,
}

json_encoder = msgspec.json.Encoder()
