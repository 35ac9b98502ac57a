"""Handlers of the live-workout events: validated payload in, ack out.

The edge (namespace.py) has already converted the payload; the live state does
the atomic work and publishes the events; the handlers add the rules that need
the session or the clock, and tell the scheduler about new timer ends.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec
from asyncpg import InterfaceError, PostgresError

from db import records as db_records
from db import rooms as db_rooms
from db import workouts as db_workouts
from realtime.core import protocol as p
from realtime.core.errors import AppError
from realtime.core.records import baseline_json
from realtime.live import persist
from realtime.live.live_state import NoSuchWorkout, now_ms
from realtime.live.room_state import workout_ended
from realtime.live.services import Services

from .namespace import Handler, Session

if TYPE_CHECKING:
    from .rooms import RoomHandlers

log = logging.getLogger("liveset.workouts")

# A device's clock may run a little ahead of ours; a set logged further ahead is a bug.
FUTURE_TOLERANCE_MS = 5 * 60 * 1000


class _EndsAt(msgspec.Struct):
    ends_at: int
    status: str


class WorkoutHandlers:
    def __init__(self, services: Services, rooms: RoomHandlers) -> None:
        self.services = services
        self.rooms = rooms

    def table(self) -> dict[str, Handler]:
        of_a_workout: dict[str, Handler] = {
            "workout:pause": self.pause,
            "workout:resume": self.resume,
            "workout:discard": self.discard,
            "workout:complete": self.complete,
            "workout:sync": self.sync,
            "set:complete": self.complete_set,
            "set:update": self.update_set,
            "set:delete": self.delete_set,
            "rest:start": self.start_rest,
            "rest:adjust": self.adjust_rest,
            "rest:skip": self.skip_rest,
        }
        return {"workout:start": self.start, **{name: self._or_history(h) for name, h in of_a_workout.items()}}

    def _or_history(self, handler: Handler) -> Handler:
        """A workout the live state no longer holds may be in the history: a device that comes
        back after the live state let an ended workout go (settings.ended_keep_s) gets the answer
        it would have got before (conflict, status completed) instead of not_found."""
        async def handle(session: Session, payload: Any) -> Any:
            try:
                return await handler(session, payload)
            except NoSuchWorkout:
                if await self._completed(session.user_id, payload.workout_id):
                    raise AppError("conflict", "the workout has been completed", {"status": "completed"}) from None
                raise
        return handle

    async def _baselines(self, user_id: str, exercises: list[str]) -> dict[str, bytes]:
        """The user's standing records for each exercise, from Postgres in one query."""
        found = await db_records.for_exercises(self.services.runtime.db, user_id, exercises)
        return {exercise: baseline_json(rows) for exercise, rows in found.items()}

    async def load_baseline(self, user_id: str, exercise_id: str) -> bytes:
        """One exercise's standing records, for a set that found them missing (once per workout and exercise)."""
        try:
            return (await self._baselines(user_id, [exercise_id]))[exercise_id]
        except (PostgresError, OSError, TimeoutError) as exc:
            log.warning("could not load records", extra={"error": str(exc)})
            raise AppError("unavailable", "records are unreachable; retry") from None

    async def start(self, session: Session, payload: p.WorkoutStart) -> msgspec.Raw:
        runtime = self.services.runtime
        if await self._completed(session.user_id, payload.workout_id):
            raise AppError("conflict", "this workout was completed; start a new one with a new workout_id",
                           {"workout_id": str(payload.workout_id), "status": "completed"})
        if payload.room_id is not None:
            try:
                member = await db_rooms.is_member(runtime.db, payload.room_id, session.user_id)
            except (PostgresError, OSError):
                raise AppError("unavailable", "rooms are unreachable; retry") from None
            if not member:
                raise AppError("not_found", "no such room", {"room_id": str(payload.room_id)})
        ack = await runtime.live.start(session.user_id, payload)
        if payload.room_id is not None and await self._still_member(session.user_id, payload.room_id):
            await self.rooms.set_workout(session.user_id, str(payload.room_id), str(payload.workout_id))
        await self._preload_planned_records(session.user_id, payload)
        return ack

    async def _still_member(self, user_id: str, room_id: UUID) -> bool:
        """Membership was checked before the start, and a room:leave or room:remove that ran in
        between found no workout to take out of the room (rooms.py: _user_out). Checked again
        now that the workout is there, one of the two steps sees the other; a member gone by now
        (or a check that fails) takes the workout out of the room."""
        runtime = self.services.runtime
        try:
            if await db_rooms.is_member(runtime.db, room_id, user_id):
                return True
        except (PostgresError, OSError):
            log.warning("could not check the room again; the workout goes on without it")
        await runtime.live.leave_room(user_id, str(room_id))
        return False

    async def _completed(self, user_id: str, workout_id: UUID) -> bool:
        """Whether the history has this workout. A completed workout's id is refused for good: the
        live state forgets an ended workout (settings.ended_keep_s), so a device replaying its
        offline start later would otherwise get a new live workout whose completion finds the
        stored one and stores nothing of it."""
        try:
            return await db_workouts.id_used(self.services.runtime.db, user_id, workout_id)
        except (PostgresError, InterfaceError, OSError, TimeoutError):
            raise AppError("unavailable", "workout history is unreachable; retry") from None

    async def _preload_planned_records(self, user_id: str, payload: p.WorkoutStart) -> None:
        """The planned exercises' standing records in one query, so that no set waits for them.
        Only a shortcut: when it fails, each exercise's first set loads its own."""
        exercises = list(dict.fromkeys(item.exercise_id for item in payload.plan or ()))
        if not exercises:
            return
        try:
            baselines = await self._baselines(user_id, exercises)
            await self.services.runtime.live.preload(user_id, str(payload.workout_id), baselines)
        except (PostgresError, OSError, TimeoutError, AppError) as exc:
            log.warning("could not preload the plan's records", extra={"error": str(exc)})

    async def pause(self, session: Session, payload: p.WorkoutRef) -> msgspec.Raw:
        return await self.services.runtime.live.pause(session.user_id, str(payload.workout_id))

    async def resume(self, session: Session, payload: p.WorkoutRef) -> msgspec.Raw:
        return await self.services.runtime.live.resume(session.user_id, str(payload.workout_id))

    async def complete(self, session: Session, payload: p.WorkoutComplete) -> msgspec.Raw:
        runtime = self.services.runtime
        ack, room_id = await persist.complete(runtime.live, runtime.writer, session.user_id, payload)
        await workout_ended(runtime, session.user_id, room_id)
        return ack

    async def discard(self, session: Session, payload: p.WorkoutRef) -> msgspec.Raw:
        runtime = self.services.runtime
        ack, room_id = await runtime.live.discard(session.user_id, str(payload.workout_id))
        await workout_ended(runtime, session.user_id, room_id)
        return ack

    async def sync(self, session: Session, payload: p.WorkoutSync) -> msgspec.Raw:
        return await self.services.runtime.live.sync(session.user_id, str(payload.workout_id), payload.since_seq)

    async def complete_set(self, session: Session, payload: p.SetComplete) -> msgspec.Raw:
        _not_in_future(payload.completed_at)
        return await self.services.runtime.live.complete_set(session.user_id, payload)

    async def update_set(self, session: Session, payload: p.SetUpdate) -> msgspec.Raw:
        if isinstance(payload.completed_at, int):
            _not_in_future(payload.completed_at)
        return await self.services.runtime.live.update_set(session.user_id, payload)

    async def delete_set(self, session: Session, payload: p.SetDelete) -> msgspec.Raw:
        return await self.services.runtime.live.delete_set(session.user_id, payload)

    async def start_rest(self, session: Session, payload: p.RestStart) -> msgspec.Raw:
        return self._timer(session, await self.services.runtime.live.start_rest(session.user_id, payload))

    async def adjust_rest(self, session: Session, payload: p.RestAdjust) -> msgspec.Raw:
        return self._timer(session, await self.services.runtime.live.adjust_rest(session.user_id, payload))

    async def skip_rest(self, session: Session, payload: p.WorkoutRef) -> msgspec.Raw:
        return await self.services.runtime.live.skip_rest(session.user_id, str(payload.workout_id))

    def _timer(self, session: Session, ack: msgspec.Raw) -> msgspec.Raw:
        timer = msgspec.json.decode(ack, type=_EndsAt)
        if timer.status == "running":
            self.services.runtime.timers.note(session.user_id, timer.ends_at)
        return ack


def _not_in_future(completed_at: int | None) -> None:
    if completed_at is not None and completed_at > now_ms() + FUTURE_TOLERANCE_MS:
        raise AppError("invalid_payload", "completed_at is in the future", {"field": "completed_at"})
