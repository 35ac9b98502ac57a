"""Live workout state in Redis: one Lua script per operation, one round trip each.

Each script validates, dedupes the client id, applies the change, takes the next
`seq`, appends the event to the workout's log and publishes it — atomically.
Python prepares the JSON it already knows (the set, the name, the plan) and gets
back the event's JSON for the ack; it never decodes what it only passes on.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, cast

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from realtime.core import protocol as p
from realtime.core.errors import AppError
from realtime.core.keys import SHARDS, Keys
from realtime.core.records import Walk, weigh_last_set
from realtime.transport.redis_connection import Arg

from .script_line import Function, ScriptLine

LUA_DIR = Path(__file__).parent / "lua"
SCRIPTS = (
    "workout_start", "workout_pause", "workout_resume", "workout_discard", "workout_active", "workout_leave_room",
    "workout_sync",
    "workout_complete_begin", "workout_complete_finish", "workout_complete_abort",
    "set_complete", "set_update", "set_delete", "rest_start", "rest_adjust", "rest_skip", "timers_fire",
    "records_rebase", "records_preload",
    # devices.py, room_state.py and rest/limits.py: their own KEYS and ARGV, bind unused
    "devices_join", "heartbeat", "presence_change", "rate_take",
)
TIMERS_PER_CALL = 500
RECORDS_SEEN = 20_000  # workout exercises whose records a process keeps for the next set: ~1 KB each
# What one user's devices may make Valkey do, across devices and processes (lua/_lib.lua: spend):
# the steps that go through the whole workout (walks, replays) spend cost units from a budget
# (settings: user_budget_*): one each, plus one per WORK_PER_UNIT entries or KB walked or read
# (about a plain step's Valkey time). Sets logged in order spend nothing.
WORK_PER_UNIT = 16
# Sets one workout holds: bounds its live state and what a walk or a snapshot reads.
MAX_SETS_PER_WORKOUT = 500
# A set's event carries every record of its exercise in the workout: some 3-15 of them, 2 KB at
# most, for a person; a client logging every set at a new weight makes a record per set, and
# each event grows with the workout (50 KB at 500 sets, to every device). Past this size the
# set spends from the user's budget as a read of that size would.
RECORDS_FREE_BYTES = 4096
# Calls of set_complete for one set before the script walks every set itself: at worst the
# records to load, changed while loading, a walk to do here, and its result; a fifth means a
# storm of changes to one workout kept moving it under the caller.
WEIGH_TRIES = 5
WALK_STEP = 100  # sets a walk here weighs between two turns of the event loop

BaselineLoader = Callable[[str, str], Awaitable[bytes]]
_encode = msgspec.json.encode
_SET = msgspec.json.Decoder(p.SetRecord)


@functools.cache
def library(budget_per_s: float, budget_burst: int) -> dict[str, Function]:
    """Every script of lua/ as a function of one function library (the one way liveset loads
    Lua), each beginning with _lib.lua's `bind`; the library's and the functions' names carry a
    hash of its source. The user's cost budget is part of the source: a process loads the one
    library its settings make (LiveState.scripts), and every script it runs is from it."""
    bodies = {name: (LUA_DIR / f"{name}.lua").read_text() for name in SCRIPTS}
    # `redis.register_function`, not Valkey's `server.` alias, so that Redis 7 loads it too.
    limits = (f"local BUDGET_PER_S, BUDGET_BURST, WORK_PER_UNIT, MAX_SETS, RECORDS_FREE_BYTES = "
              f"{budget_per_s!r}, {budget_burst}, {WORK_PER_UNIT}, {MAX_SETS_PER_WORKOUT}, {RECORDS_FREE_BYTES}")
    lib = (LUA_DIR / "_lib.lua").read_text()
    tag = hashlib.sha1("".join([limits, lib, *bodies.values()]).encode()).hexdigest()[:16]
    source = "\n".join([
        f"#!lua name=liveset_{tag}", limits, lib,
        *(f"redis.register_function('{name}_{tag}', function(keys, args)\nbind(keys, args)\n{body}\nend)"
          for name, body in bodies.items()),
    ]).encode()
    return {name: Function(source, f"{name}_{tag}".encode()) for name in SCRIPTS}


# The scripts every set runs take only the first KEYS they use (lua/_lib.lua lists them).
KEYS_USED = {"rest_start": 3, "set_complete": 8}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _pairs(baselines: dict[str, bytes]) -> list[Arg]:
    """exercise_id, its baseline, exercise_id, ...: how the records scripts take them in ARGV."""
    return [x for pair in baselines.items() for x in pair]


def totals_share(record: p.SetRecord) -> tuple[str, str]:
    """A new set's share of the workout's volume and its rpe ('' for none), counted as
    lua/_lib.lua's `tally` counts a set it reads: set_complete.lua then needs no JSON decoding."""
    volume = ""
    if record.set_type != "warmup" and record.weight_kg is not None and record.reps is not None:
        volume = repr(record.weight_kg * record.reps)  # the same double as Lua's weight * reps
    return volume, "" if record.rpe is None else repr(record.rpe)


def _json_or_null(value: object) -> bytes:
    return b"null" if value is None else _encode(value)


class NoSuchWorkout(AppError):
    """The live state has no such workout of the user's: never started, another user's, or
    ended longer ago than it keeps ended workouts (the handlers then look in the history)."""


class ConnectionGone(Exception):
    """The connection has no entry among the user's devices: a newer one of its device replaced it."""


class LiveState:
    def __init__(
        self, redis: Redis, line: ScriptLine, keys: Keys, load_baseline: BaselineLoader, log_cap: int,
        budget: tuple[float, int] = (10.0, 200), ended_keep_s: int = 600,
    ) -> None:
        self.redis = redis  # for the few plain commands off the hot path
        self.line = line  # every script
        self.log_cap = log_cap
        self.ended_keep_s = ended_keep_s  # settings.ended_keep_s
        self.keys = keys
        self.load_baseline = load_baseline
        # (workout_id, exercise_id) -> its standing and stored records as of the last set logged here
        self.records_seen: dict[tuple[str, str], tuple[bytes, bytes]] = {}
        self.scripts = library(*budget)  # every script this process runs (devices.py, room_state.py, rest/ too)
        self.weigh_tries = WEIGH_TRIES  # 1: the scripts walk every set themselves (tests compare both)

    async def _call(self, name: str, user_id: str, workout_id: str, *args: Arg) -> list[Any]:
        keys = self.keys.workout(user_id, workout_id)[:KEYS_USED.get(name)]  # None: all of them
        argv: list[Arg] = [user_id, workout_id, now_ms(), self.keys.user_channel(user_id), self.log_cap, *args]
        try:
            reply: list[Any] = await self.line.run(self.scripts[name], keys, argv)
            return reply
        except RedisError as exc:
            raise AppError("unavailable", "live state is unreachable; retry") from exc

    async def _change(self, name: str, user_id: str, workout_id: str, *args: Arg) -> msgspec.Raw:
        """Run a changing script, loading a missing baseline of records once if it asks."""
        reply = await self._call(name, user_id, workout_id, *args)
        if reply[0] == b"need_base":
            exercise = reply[1].decode()
            baseline = await self.load_baseline(user_id, exercise)
            reply = await self._call(name, user_id, workout_id, *args, exercise, baseline)
        return _ack(reply)

    # ---- workouts -----------------------------------------------------------

    async def start(self, user_id: str, payload: p.WorkoutStart) -> msgspec.Raw:
        fingerprint = _encode([payload.name, payload.plan, payload.room_id])
        return await self._change(
            "workout_start", user_id, str(payload.workout_id), fingerprint,
            _json_or_null(payload.name), _json_or_null(payload.plan), _json_or_null(payload.room_id),
        )

    async def pause(self, user_id: str, workout_id: str) -> msgspec.Raw:
        return await self._change("workout_pause", user_id, workout_id)

    async def resume(self, user_id: str, workout_id: str) -> msgspec.Raw:
        return await self._change("workout_resume", user_id, workout_id)

    async def discard(
        self, user_id: str, workout_id: str, idle_since: int | None = None
    ) -> tuple[msgspec.Raw, str | None]:
        """The ack, and the room the workout was started in when this call ended it."""
        guard = () if idle_since is None else (idle_since,)
        reply = await self._call("workout_discard", user_id, workout_id, self.ended_keep_s, *guard)
        ack = _ack(reply)
        room = msgspec.json.decode(reply[2]) if len(reply) > 2 else None
        return ack, room

    async def idle_workouts(self, shard: int, idle_since: int) -> list[tuple[str, str, int]]:
        """(user_id, workout_id, set_count) of the shard's open workouts idle since `idle_since`.

        The active queue's scores lag (the scripts write only last_at, see _lib.lua: touch):
        an entry found stale here is moved on to its last_at, so the next look sees past it.
        """
        active = self.keys.active(shard)
        try:
            states = cast(list[bytes], await self.redis.zrangebyscore(active, "-inf", idle_since, start=0, num=100))
            async with self.redis.pipeline(transaction=False) as pipe:
                for state in states:
                    pipe.hmget(state, "user_id", "workout_id", "set_count", "last_at")
                found = await pipe.execute()
            busy = {state: int(last_at) for state, (*_, last_at) in zip(states, found, strict=True)
                    if last_at is not None and int(last_at) > idle_since}
            if busy:
                await self.redis.zadd(active, busy, xx=True)  # xx: never brings back a workout that ended meanwhile
        except RedisError as exc:
            raise AppError("unavailable", "live state is unreachable") from exc
        return [(u.decode(), w.decode(), int(n)) for u, w, n, last_at in found
                if u and w and n is not None and (last_at is None or int(last_at) <= idle_since)]

    async def complete_begin(
        self, user_id: str, workout_id: str, notes: str | None, idle_since: int | None = None
    ) -> msgspec.Raw | tuple[bytes, str | None]:
        """The snapshot and notes to store, or the ack of an earlier completion (Raw)."""
        guard = () if idle_since is None else (idle_since,)
        reply = await self._call("workout_complete_begin", user_id, workout_id, _json_or_null(notes), *guard)
        if reply[0] == b"store":
            return bytes(reply[1]), msgspec.json.decode(reply[2])
        return _ack(reply)

    async def complete_finish(self, user_id: str, workout_id: str, exercise_count: int) -> msgspec.Raw:
        return await self._change("workout_complete_finish", user_id, workout_id, self.ended_keep_s, exercise_count)

    async def complete_abort(self, user_id: str, workout_id: str) -> None:
        await self._call("workout_complete_abort", user_id, workout_id)

    async def leave_room(self, user_id: str, room_id: str) -> None:
        """The user left the room (or was removed): their live workout stops telling it."""
        try:
            await self.line.run(self.scripts["workout_leave_room"], [self.keys.live(user_id)],
                                [user_id, "", now_ms(), "", self.log_cap, _encode(room_id)])
        except RedisError as exc:
            raise AppError("unavailable", "live state is unreachable; retry") from exc

    async def active_snapshot(self, user_id: str, connection: tuple[str, str] | None = None) -> msgspec.Raw | None:
        """The user's live workout, or None: one round trip. With `connection` (the user's
        connections hash and the connection's entry, Devices.entry), ConnectionGone when that
        entry is gone, read in the same step."""
        keys = [self.keys.live(user_id)]
        args: list[Arg] = [user_id, "", now_ms(), "", self.log_cap]
        if connection is not None:
            keys.append(connection[0])
            args.append(connection[1])
        try:
            reply = await self.line.run(self.scripts["workout_active"], keys, args)
        except RedisError as exc:
            raise AppError("unavailable", "live state is unreachable; retry") from exc
        if reply[0] == b"gone":
            raise ConnectionGone
        return msgspec.Raw(reply[1]) if reply[0] == b"ok" else None

    async def take_rate(self, key: str, per_s: float, burst: int) -> int:
        """One request against the rate limit at `key` (lua/rate_take.lua, shared by every
        process): 0 when allowed, else the ms to wait. RedisError when Redis cannot answer."""
        wait: int = await self.line.run(self.scripts["rate_take"], [key], [now_ms(), 1000 / per_s, burst])
        return wait

    async def preload(self, user_id: str, workout_id: str, baselines: dict[str, bytes]) -> None:
        """Standing records (records.baseline_json) of exercises the workout will need, ahead of its sets."""
        if baselines:
            await self._call("records_preload", user_id, workout_id, *_pairs(baselines))
            for exercise, baseline in baselines.items():
                self._remember((workout_id, exercise), baseline, b"")

    async def rebase(self, user_id: str, baselines: dict[str, bytes]) -> None:
        """The user's standing records changed (a completed workout was deleted): the live
        workout, if any, walks those exercises again from `baselines` (records.baseline_json)."""
        if not baselines:
            return
        try:
            await self.line.run(
                self.scripts["records_rebase"], [self.keys.live(user_id)],
                [user_id, "", now_ms(), "", self.log_cap, *_pairs(baselines)])
        except RedisError as exc:
            raise AppError("unavailable", "live state is unreachable; retry") from exc

    async def sync(self, user_id: str, workout_id: str, since_seq: int) -> msgspec.Raw:
        reply = await self._call("workout_sync", user_id, workout_id, since_seq)
        if reply[0] == b"events":
            # Each packet is '2["<name>",<json>]' (the log keeps them as published).
            events = b",".join(b'{"event":' + packet[2:].replace(b",", b',"data":', 1)[:-1] + b"}"
                               for packet in reply[1])
            return msgspec.Raw(b'{"events":[' + events + b"]}")
        if reply[0] == b"snapshot":
            snapshot = reply[1]
            seq = msgspec.json.decode(snapshot, type=_SeqOnly).seq
            return msgspec.Raw(b'{"snapshot":' + snapshot + b',"seq":' + str(seq).encode() + b"}")
        return _ack(reply)

    # ---- sets ---------------------------------------------------------------

    async def complete_set(self, user_id: str, payload: p.SetComplete) -> msgspec.Raw:
        fingerprint = _encode(payload)
        completed_at = payload.completed_at if payload.completed_at is not None else now_ms()
        record = p.SetRecord(
            set_id=str(payload.set_id), exercise_id=payload.exercise_id, set_type=payload.set_type,
            weight_kg=payload.weight_kg, reps=payload.reps, duration_s=payload.duration_s,
            distance_m=payload.distance_m, rpe=payload.rpe, notes=payload.notes, completed_at=completed_at,
        )
        workout_id = str(payload.workout_id)
        args = (str(payload.set_id), fingerprint, _encode(record), payload.exercise_id, completed_at,
                *totals_share(record))
        seen = (workout_id, payload.exercise_id)
        base, stored = self.records_seen.get(seen, (b"", b""))
        loaded: tuple[bytes, ...] = ()
        # The set is weighed here against the records last seen; the script says when they
        # changed meanwhile (another device, an edit) and the set is weighed again, or when the
        # set is not the last and every set must be walked (it sends them). Under a storm of
        # changes to one workout, the last try has the script walk them itself.
        weighed = _weighed(base, stored, record)
        for attempt in range(1, self.weigh_tries + 1):
            if attempt == self.weigh_tries:
                weighed = (b"*", b"", b"", b"")
            reply = await self._call("set_complete", user_id, workout_id, *args, *weighed, *loaded)
            if reply[0] == b"walk":
                base = reply[2][1]
                mark, records, news = await walked(reply, lambda sets: [*sets, record], record.set_id)
                weighed = (mark, b"", records, news)
            elif reply[0] == b"stale":
                base, stored = reply[1], reply[2]
                if base is None:
                    base = await self.load_baseline(user_id, payload.exercise_id)
                    loaded = (base,)
                weighed = _weighed(base, stored, record)
            else:
                break
        if reply[0] == b"ok":
            after = stored if weighed[2] == b"=" else weighed[2]
            self._remember(seen, base, reply[2] if len(reply) > 2 else after)  # walked: the records stored
        return _ack(reply)

    def _remember(self, seen: tuple[str, str], base: bytes, stored: bytes) -> None:
        """Keep a workout exercise's records for its next set, the least recently logged ones going first."""
        self.records_seen.pop(seen, None)
        self.records_seen[seen] = (base, stored)
        if len(self.records_seen) > RECORDS_SEEN:
            del self.records_seen[next(iter(self.records_seen))]

    async def update_set(self, user_id: str, payload: p.SetUpdate) -> msgspec.Raw:
        patch = {
            name: getattr(payload, name) for name in payload.__struct_fields__
            if name not in ("workout_id", "set_id") and getattr(payload, name) is not msgspec.UNSET
        }
        if not patch:
            raise AppError("invalid_payload", "name at least one field to change")
        body = _encode(patch)
        set_id = str(payload.set_id)
        fields = msgspec.json.decode(body)

        def changed(sets: list[p.SetRecord]) -> list[p.SetRecord]:
            return [msgspec.convert({**msgspec.to_builtins(s), **fields}, p.SetRecord) if s.set_id == set_id else s
                    for s in sets]
        # A walk: the set's exercise's records and news, and those of the one it left, if it did.
        return await self._walking("set_update", user_id, str(payload.workout_id), (set_id, body, body), changed,
                                   set_id, width=5)

    async def delete_set(self, user_id: str, payload: p.SetDelete) -> msgspec.Raw:
        set_id = str(payload.set_id)
        return await self._walking("set_delete", user_id, str(payload.workout_id), (set_id,),
                                   lambda sets: [s for s in sets if s.set_id != set_id], set_id, width=3)

    async def _walking(self, name: str, user_id: str, workout_id: str, head: tuple[Arg, ...],
                       change: Callable[[list[p.SetRecord]], list[p.SetRecord]], set_id: str,
                       width: int) -> msgspec.Raw:
        """Run set_update or set_delete, whose ARGV are `head`, then `width` of a walk ('' at
        first; '#<seq>' and the records and news of each exercise the script named, once
        walked here; '*' on the last try: the script walks), then a baseline it asked for."""
        walk: list[bytes] = [b""] * width
        loaded: list[Arg] = []
        for attempt in range(1, self.weigh_tries + 1):
            if attempt == self.weigh_tries:
                walk = [b"*"] + [b""] * (width - 1)
            reply = await self._call(name, user_id, workout_id, *head, *walk, *loaded)
            if reply[0] == b"need_base":
                exercise = reply[1].decode()
                loaded = [exercise, await self.load_baseline(user_id, exercise)]
            elif reply[0] == b"walk":
                found = await walked(reply, change, set_id)
                walk = found + [b""] * (width - len(found))
            else:
                break
        return _ack(reply)

    # ---- rest timers --------------------------------------------------------

    async def start_rest(self, user_id: str, payload: p.RestStart) -> msgspec.Raw:
        return await self._change(
            "rest_start", user_id, str(payload.workout_id), round(payload.duration_s * 1000),
            _encode(payload.duration_s), _json_or_null(payload.exercise_id),
        )

    async def adjust_rest(self, user_id: str, payload: p.RestAdjust) -> msgspec.Raw:
        return await self._change("rest_adjust", user_id, str(payload.workout_id), round(payload.delta_s * 1000))

    async def skip_rest(self, user_id: str, workout_id: str) -> msgspec.Raw:
        return await self._change("rest_skip", user_id, workout_id)

    async def fire_due_timers(self, shards: Sequence[int] = range(SHARDS)) -> list[tuple[int, int, int]]:
        """Fire the due rest timers of these shards in one round trip.

        Returns (shard, timers fired, ms of the shard's next due timer or -1)."""
        now = now_ms()
        args: list[Arg] = ["", "", now, "", self.log_cap, "", self.keys.user_channel_prefix(), TIMERS_PER_CALL]
        replies = await self.line.run_all(self.scripts["timers_fire"], [([self.keys.due(s)], args) for s in shards])
        return [(shard, int(fired), int(next_due)) for shard, (fired, next_due) in zip(shards, replies, strict=True)]


class _SeqOnly(msgspec.Struct):
    seq: int


_ENDED = {
    b"completing": "the workout is being completed",
    b"completed": "the workout has been completed",
    b"discarded": "the workout has been discarded",
}


def _weighed(base: bytes, stored: bytes, record: p.SetRecord) -> tuple[bytes, bytes, bytes, bytes]:
    """set_complete.lua's ARGV 13-16: the set weighed alone against the records last seen."""
    if not base:
        return b"", b"", b"", b""  # none seen: the script sends them
    after, took = weigh_last_set(base, stored, record)
    return base, stored, after if took else b"=", took  # "=": the records stay as they are


async def walked(reply: list[Any], change: Callable[[list[p.SetRecord]], list[p.SetRecord]],
                 set_id: str) -> list[bytes]:
    """The walk a script asked for (lua/_lib.lua: walk_reply), done here: '#<seq>', then each
    named exercise's records and the news of `set_id`, once `change` is made to the sets. It
    lets the event loop run other work every WALK_STEP sets (a few hundred of them take ms)."""
    _, seq, found, stored = reply
    sets: list[p.SetRecord] = []
    for i in range(0, len(stored), WALK_STEP):
        sets += map(_SET.decode, stored[i:i + WALK_STEP])
        await asyncio.sleep(0)
    sets = sorted(change(sets), key=lambda s: (s.completed_at, s.set_id))
    out = [b"#" + seq]
    for i in range(0, len(found), 3):
        walk = Walk(found[i + 1], found[i].decode())
        for j in range(0, len(sets), WALK_STEP):
            walk.feed(sets[j:j + WALK_STEP])
            await asyncio.sleep(0)
        out += walk.result(found[i + 2], set_id)
    return out


def _ack(reply: list[Any]) -> msgspec.Raw:
    status = reply[0]
    if status in (b"ok", b"dup"):
        return msgspec.Raw(reply[1])
    message = reply[1].decode() if len(reply) > 1 else None
    if status == b"not_found":
        if message is None:
            raise NoSuchWorkout("not_found", "no such workout")
        raise AppError("not_found", message)
    if status == b"ended":
        raise AppError("conflict", _ENDED.get(reply[1], "the workout has ended"), {"status": message})
    if status == b"active":
        raise AppError("conflict", "the workout is active again")
    if status == b"rate_limited":
        raise AppError("rate_limited", "this user's devices are asking more of the server than it allows; slow down",
                       {"retry_after_ms": int(reply[1])})
    if status == b"full":
        raise AppError("conflict", f"a workout holds at most {message} sets: complete it and start another")
    if status == b"conflict":
        details = {"workout_id": reply[2].decode()} if len(reply) > 2 else None
        raise AppError("conflict", message or "conflict", details)
    raise AppError("internal", f"unexpected reply from the live state: {status!r}")
