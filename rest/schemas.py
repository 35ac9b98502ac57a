"""Every REST response body as a msgspec Struct; /openapi.json is generated from these."""

from __future__ import annotations

from typing import Any

from msgspec import Struct

from realtime.core.fields import RecordType
from realtime.core.protocol import PresenceEntry, Room, SetRecord


class WorkoutItem(Struct):
    workout_id: str
    name: str | None
    notes: str | None
    room_id: str | None
    started_at: int
    completed_at: int
    duration_s: int
    total_volume_kg: float
    set_count: int
    exercise_count: int


# A stored set has exactly the shape of a live one.
SetItem = SetRecord


class WorkoutDetail(WorkoutItem):
    plan: list[dict[str, Any]] | None
    sets: list[SetItem]


class WorkoutPage(Struct):
    data: list[WorkoutItem]
    next_cursor: str | None


class RecordItem(Struct, omit_defaults=True):
    type: RecordType
    value: float
    workout_id: str
    set_id: str
    achieved_at: int
    weight_kg: float | None = None  # for max_reps: the weight the reps were done at


class Records(Struct):
    exercise_id: str
    data: list[RecordItem]


class HistoryItem(SetItem):
    workout_id: str


class HistoryPage(Struct):
    data: list[HistoryItem]
    next_cursor: str | None


class VolumeBucket(Struct):
    start: str  # the bucket's first day, YYYY-MM-DD, in the requested time zone
    total_volume_kg: float
    set_count: int
    workout_count: int


class Volume(Struct):
    bucket: str
    tz: str
    data: list[VolumeBucket]




class RoomList(Struct):
    data: list[Room]


class RoomDetail(Struct):
    room: Room
    members: list[str]
    presence: list[PresenceEntry]
