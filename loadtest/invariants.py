"""--chaos: what must hold when the faults are over, checked by each worker for its users.

In this order, each step on what the one before left: every device back and synced
with no seq missing; every room's presence exactly its members' devices; the last
workout's log gapless, every acked set in it once, every rest timer finished once;
that workout completed; every workout of the run (--workout-sets) stored once with
every acked set once, the last one with the sets of its log and no others; the
device limit admitting exactly MAX_DEVICES_PER_USER. A broken invariant is counted in
`Samples.violations` under its name (and its first cases printed), never raised: the
run reports all of them.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from typing import Any

from .config import Config
from .user import User
from .wsclient import ConnectRefused, SocketIOClient

BACK_WITHIN_S = 60.0
LIMIT_PROBES = 3  # users per worker whose device limit is tried at the end


def _broken(user: User, invariant: str, detail: str) -> None:
    seen = user.samples.violations.get(invariant, 0)
    user.samples.violations[invariant] = seen + 1
    if seen < 3:
        print(f"  [chaos] {invariant}: {user.user_id}: {detail}", file=sys.stderr, flush=True)


async def check(users: list[User], cfg: Config) -> None:
    await asyncio.gather(*(_back(u) for u in users))
    logs = await asyncio.gather(*(_log(u) for u in users))
    await asyncio.gather(*(_gapless(u, log) for u, log in zip(users, logs, strict=True) if log is not None))
    await asyncio.gather(*(_presence(u) for u in users if _owns_room(u)))
    await asyncio.gather(*(_complete(u) for u in users))
    await _stored(users, logs, cfg)
    await asyncio.gather(*(_limit(u, cfg) for u in users[:LIMIT_PROBES]))


async def _back(user: User) -> None:
    for device in user.devices:
        try:
            await asyncio.wait_for(device.up.wait(), BACK_WITHIN_S)
        except TimeoutError:
            _broken(user, "device not back", f"device {device.index} not back {BACK_WITHIN_S:g} s after the faults")


async def _log(user: User) -> list[dict[str, Any]] | None:
    """The workout's whole log: gapless from seq 1, every acked set once, every timer finished once."""
    ack = await user.call(user.devices[0], "workout:sync", {"workout_id": user.workout_id, "since_seq": 0})
    if ack is None:
        _broken(user, "log unreadable", "workout:sync from 0 failed")
        return None
    if "snapshot" in ack["data"]:
        _broken(user, "log trimmed", "WORKOUT_LOG_CAP reached: a shorter run or fewer sets per user")
        return None
    events = [e for e in ack["data"]["events"] if isinstance(e.get("data"), dict)]
    seqs = [e["data"]["seq"] for e in events]
    if seqs != list(range(1, len(seqs) + 1)):
        _broken(user, "log not gapless", f"seqs {seqs[:5]}...{seqs[-5:]}")
    logged = Counter(e["data"]["set"]["set_id"] for e in events if e["event"] == "set:completed")
    for set_id in set(user.acked):
        if logged[set_id] != 1:
            _broken(user, "acked set not logged once", f"{set_id} logged {logged[set_id]} times")
    _timers(user, [e["data"] for e in events if e["event"] == "rest:timer"])
    return events


def _timers(user: User, timers: list[dict[str, Any]]) -> None:
    """Each timer started ends once: finished at its ends_at, skipped, or restarted; and
    none is still running once the faults are over (every end has passed)."""
    running: int | None = None
    for timer in timers:
        if timer["status"] == "finished" and timer["ends_at"] != running:
            _broken(user, "timer finished twice or unstarted", f"finished at seq {timer['seq']}")
        running = timer["ends_at"] if timer["status"] == "running" else None
    if running is not None:
        _broken(user, "timer never finished", f"the last timer (ends_at {running}) did not finish")


async def _gapless(user: User, log: list[dict[str, Any]]) -> None:
    """Every device, after one more workout:sync from where it stands, has had every seq."""
    top = len(log)
    for device in user.devices:
        ack = await user.call(device, "workout:sync", {"workout_id": user.workout_id, "since_seq": device.last_seq})
        if ack is not None and "events" in ack["data"]:
            device.seen.update(e["data"]["seq"] for e in ack["data"]["events"] if isinstance(e.get("data"), dict))
        missing = [q for q in range(1, top + 1) if q not in device.seen]
        if missing:
            _broken(user, "device missed events", f"device {device.index} never had seqs {missing[:10]}")


def _owns_room(user: User) -> bool:
    return user.room_id is not None and min(m.index for m in user.mates.values()) == user.index


async def _presence(owner: User) -> None:
    """The room's presence is its members, each on all their devices, in their workout."""
    assert owner.room_id is not None
    ack = await owner.call(owner.devices[0], "room:join", {"room_id": owner.room_id})
    if ack is None:
        _broken(owner, "presence unreadable", "room:join failed")
        return
    present = {p["user_id"]: (p["device_count"], p["workout_id"]) for p in ack["data"]["presence"]}
    expected = {m.user_id: (len(m.devices), m.workout_id) for m in owner.mates.values()}
    if present != expected:
        _broken(owner, "presence wrong", f"room {owner.room_id}: {present} != {expected}")


async def _complete(user: User) -> None:
    user.finishing = True  # from here on a drop is not a fault to ride out
    if await user.call(user.devices[0], "workout:complete", {"workout_id": user.workout_id}) is None:
        _broken(user, "not completed", "workout:complete failed")


async def _stored(users: list[User], logs: list[list[dict[str, Any]] | None], cfg: Config) -> None:
    """Postgres holds each workout once, every acked set of it once; the last workout, with
    exactly the sets of its log."""
    import asyncpg

    assert cfg.database_url is not None
    db = await asyncpg.connect(cfg.database_url)
    try:
        for user, log in zip(users, logs, strict=True):
            for workout_id, acked in [*user.completed, (user.workout_id, user.acked)]:
                stored = await _stored_sets(db, user, workout_id, acked)
            if log is not None:
                logged = {e["data"]["set"]["set_id"] for e in log if e["event"] == "set:completed"}
                if logged != set(stored):  # sets edited or deleted would differ; the load does neither
                    _broken(user, "stored sets differ from the log", f"{len(stored)} stored, {len(logged)} logged")
    finally:
        await db.close()


async def _stored_sets(db: Any, user: User, workout_id: str, acked: list[str]) -> Counter[str]:
    workouts = await db.fetchval("SELECT count(*) FROM workouts WHERE user_id = $1 AND id = $2",
                                 user.user_id, workout_id)
    if workouts != 1:
        _broken(user, "workout not stored once", f"{workout_id}: {workouts} rows")
    stored = Counter(r["id"] for r in await db.fetch(
        "SELECT id::text FROM workout_sets WHERE user_id = $1 AND workout_id = $2", user.user_id, workout_id))
    lost = set(acked) - set(stored)
    if lost or any(n > 1 for n in stored.values()):
        _broken(user, "acked set not stored once", f"{workout_id}: lost {sorted(lost)[:3]}, doubled "
                                                   f"{[s for s, n in stored.items() if n > 1][:3]}")
    return stored


async def _limit(user: User, cfg: Config) -> None:
    """After every fault the user's device limit still counts exactly the devices connected:
    `device_limit` of them are admitted and one more is refused."""
    urls = cfg.url.split(",")
    extra = [SocketIOClient(urls[k % len(urls)], {"token": user.token, "device_id": f"extra-{k}"},
                            lambda *_: None, time.time_ns) for k in range(cfg.device_limit - len(user.devices) + 1)]
    try:
        for k, client in enumerate(extra):
            try:
                await client.connect()
                if k == len(extra) - 1:
                    _broken(user, "device limit not held", f"device {cfg.device_limit + 1} admitted")
            except ConnectRefused as exc:
                if k < len(extra) - 1 or "conflict" not in str(exc):
                    _broken(user, "device limit wrong", f"device {len(user.devices) + k + 1} refused: {exc}")
    finally:
        await asyncio.gather(*(c.close() for c in extra), return_exceptions=True)
