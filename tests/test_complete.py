"""workout:complete stores the workout in Postgres exactly once, then retires it."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import msgspec
import pytest

from liveset.dev.embedded import EmbeddedPostgres
from liveset.lifespan import redis_client
from realtime.core import protocol as p
from realtime.core.keys import Keys, shard_of
from realtime.live import persist
from realtime.live.live_state import LiveState
from realtime.live.script_line import ScriptLine

from .clients import Device, check, error, ok, token
from .conftest import make_settings
from .servers import in_process
from .test_live_workout import new_id

pytestmark = pytest.mark.every_redis


async def rows(database_url: str, sql: str, *args) -> list:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


_last_completed_at = 0


def _completed_at() -> int:
    """Now, in ms, and always later than the last one: sets logged within one millisecond would
    tie and be ordered by set_id (docs/protocol.md), not in the order these tests log them."""
    global _last_completed_at
    _last_completed_at = max(time.time_ns() // 1_000_000, _last_completed_at + 1)
    return _last_completed_at


async def log_sets(device, wid: str, sets: list[tuple[str, float, int]]) -> list[str]:
    ids = []
    for exercise, weight, reps in sets:
        sid = new_id()
        await ok(device, "set:complete", {"workout_id": wid, "set_id": sid, "exercise_id": exercise,
                                          "weight_kg": weight, "reps": reps, "rpe": 8,
                                          "completed_at": _completed_at()})
        ids.append(sid)
    return ids


async def test_complete_stores_once_and_retires(user, database_url: str) -> None:
    uid, phone, watch = user
    wid = new_id()
    await ok(phone, "workout:start", {"workout_id": wid, "name": "Upper"})
    ids = await log_sets(phone, wid, [("bench", 80, 5), ("bench", 85, 3), ("row", 60, 10)])
    ack = await ok(watch, "workout:complete", {"workout_id": wid, "notes": "felt strong"})
    done = check("workout:completed", ack)
    assert done.summary.set_count == 3 and done.summary.exercise_count == 2
    assert done.summary.total_volume_kg == 80 * 5 + 85 * 3 + 60 * 10
    assert {(r.type, r.set_id) for r in done.summary.prs if r.type == "max_weight"} == {
        ("max_weight", ids[1]), ("max_weight", ids[2])}
    assert await ok(phone, "workout:complete", {"workout_id": wid, "notes": "felt strong"}) == ack  # a retry
    name, event = await phone.wait_seq(wid, done.seq)
    assert name == "workout:completed" and event == ack

    (workout,) = await rows(database_url, "SELECT * FROM workouts WHERE user_id = $1", uid)
    assert str(workout["id"]) == wid and workout["name"] == "Upper" and workout["notes"] == "felt strong"
    assert workout["set_count"] == 3 and workout["exercise_count"] == 2
    stored = await rows(database_url, "SELECT id, position, rpe FROM workout_sets WHERE user_id = $1"
                        " ORDER BY position", uid)
    assert [str(r["id"]) for r in stored] == ids and all(float(r["rpe"]) == 8 for r in stored)
    records = await rows(database_url, "SELECT exercise_id, type, value FROM personal_records"
                         " WHERE user_id = $1 AND type = 'max_weight'", uid)
    assert {(r["exercise_id"], r["value"]) for r in records} == {("bench", 85), ("row", 60)}

    # The workout is over: no more changes, no live workout, and a new one may start.
    assert (await error(phone, "set:complete", {"workout_id": wid, "set_id": new_id(), "exercise_id": "bench",
                                                "reps": 1}))["code"] == "conflict"
    assert (await ok(phone, "workout:sync", {"workout_id": wid, "since_seq": done.seq - 1}))["events"][0][
        "event"] == "workout:completed"
    await ok(phone, "workout:start", {"workout_id": new_id()})


@pytest.mark.parametrize("exercises", [["squat"], ["squat", "bench", "row"]])
async def test_a_workout_from_a_plan_completes_and_its_history_has_the_plan(
    user, server: str, exercises: list[str]
) -> None:
    uid, phone, _ = user
    wid = new_id()
    plan = [{"exercise_id": e, "sets": 3, "reps": 5, "weight_kg": 60.0 + i, "rest_s": 90.0}
            for i, e in enumerate(exercises)]
    await ok(phone, "workout:start", {"workout_id": wid, "name": "Planned", "plan": plan})
    await log_sets(phone, wid, [(e, 60.0 + i, 5) for i, e in enumerate(exercises)])
    done = check("workout:completed", await ok(phone, "workout:complete", {"workout_id": wid}))
    assert done.summary.set_count == len(exercises)
    async with httpx.AsyncClient(base_url=server, headers={"Authorization": f"Bearer {token(uid)}"}) as http:
        stored = (await http.get(f"/api/v1/workouts/{wid}")).json()
    assert [{k: v for k, v in item.items() if v is not None} for item in stored["plan"]] == plan
    assert [s["exercise_id"] for s in stored["sets"]] == exercises


async def test_an_ended_workout_is_kept_a_while_then_only_the_history_answers_for_it(
    redis_url: str, database_url: str
) -> None:
    # Redis keeps an ended workout for retries and late syncs (ENDED_WORKOUT_KEEP_S), then lets it
    # go. After that a device that comes back must still learn that the workout was completed
    # (conflict, status completed), and a replay of its offline start must be refused, not acked
    # into a new live workout whose sets would never be stored.
    uid = f"user-{uuid.uuid4().hex[:8]}"
    settings = make_settings(redis_url, database_url, ended_keep_s=2)
    async with in_process(settings) as url:
        phone = await Device().connect(url, {"token": token(uid), "device_id": "phone"})
        watch = await Device().connect(url, {"token": token(uid), "device_id": "watch"})
        redis = redis_client(redis_url)
        try:
            await phone.wait_for("session:ready")
            await watch.wait_for("session:ready")
            wid, discarded = new_id(), new_id()
            await ok(phone, "workout:start", {"workout_id": wid, "name": "Legs"})
            set_event = {"workout_id": wid, "set_id": new_id(), "exercise_id": "squat", "weight_kg": 100, "reps": 5}
            acked = await ok(phone, "set:complete", set_event)
            done = await ok(phone, "workout:complete", {"workout_id": wid})
            await ok(phone, "workout:start", {"workout_id": discarded})
            await ok(phone, "workout:discard", {"workout_id": discarded})
            # Within the window: a repeat gets its first ack, a sync the events it missed.
            assert await ok(watch, "set:complete", set_event) == acked
            assert await ok(watch, "workout:complete", {"workout_id": wid}) == done
            missed = await ok(watch, "workout:sync", {"workout_id": wid, "since_seq": 1})
            assert [e["event"] for e in missed["events"]][-1] == "workout:completed"
            late = await error(watch, "set:complete", {**set_event, "set_id": new_id()})
            assert (late["code"], late["details"]) == ("conflict", {"status": "completed"})
            every = Keys(settings.redis_prefix).workout
            keys = [k for w in (wid, discarded) for k in every(uid, w)[:2] + every(uid, w)[3:8]]
            assert await redis.exists(*keys) > 0
            for _ in range(50):
                if not await redis.exists(*keys):
                    break
                await asyncio.sleep(0.1)
            assert not await redis.exists(*keys), "the ended workout's keys outlived ENDED_WORKOUT_KEEP_S"
            # After it: the history answers for the completed workout, whatever the event, as a
            # late set was answered before.
            for event, payload in [
                ("workout:sync", {"workout_id": wid, "since_seq": 1}),
                ("set:complete", set_event),
                ("set:complete", {**set_event, "set_id": new_id()}),
                ("workout:complete", {"workout_id": wid}),
                ("rest:start", {"workout_id": wid, "duration_s": 60}),
            ]:
                assert await error(watch, event, payload) == late, event
            err = await error(watch, "workout:start", {"workout_id": wid, "name": "Legs"})
            assert (err["code"], err["details"]) == ("conflict", {"workout_id": wid, "status": "completed"})
            # A workout never completed is not found, as before; nor is another user's.
            gone = {"workout_id": discarded, "since_seq": 0}
            assert (await error(watch, "workout:sync", gone))["code"] == "not_found"
            stranger = await Device().connect(url, {"token": token(uid + "x"), "device_id": "phone"})
            try:
                theirs = {"workout_id": wid, "since_seq": 0}
                assert (await error(stranger, "workout:sync", theirs))["code"] == "not_found"
            finally:
                await stranger.close()
            stored = await rows(database_url, "SELECT id FROM workout_sets WHERE user_id = $1", uid)
            assert [str(r["id"]) for r in stored] == [set_event["set_id"]]
            await ok(watch, "workout:start", {"workout_id": new_id()})  # a new id starts as ever
        finally:
            await redis.aclose()
            await phone.close()
            await watch.close()


async def test_a_workout_postgres_cannot_store_says_so_and_stays_live_with_its_data(
    user, settings, redis_url: str, database_url: str
) -> None:
    # A set with a NUL in its note, as a version before the edge refused them took it: no retry
    # can store it, so the ack must say so (not "unavailable, retry") and keep the workout.
    uid, phone, _ = user
    wid = new_id()
    await ok(phone, "workout:start", {"workout_id": wid})
    sid, other = await log_sets(phone, wid, [("dip", 20, 8), ("dip", 25, 6)])
    redis = redis_client(redis_url)
    try:
        sets_key = Keys(settings.redis_prefix).workout(uid, wid)[3]
        stored = msgspec.json.decode(await redis.hget(sets_key, sid))
        await redis.hset(sets_key, sid, msgspec.json.encode({**stored, "notes": "a\u0000b"}))
    finally:
        await redis.aclose()
    for _ in range(2):
        err = await error(phone, "workout:complete", {"workout_id": wid})
        assert err["code"] == "unstorable" and "0x00" in err["details"]["reason"], err
    await ok(phone, "set:update", {"workout_id": wid, "set_id": sid, "notes": "fixed"})
    done = check("workout:completed", await ok(phone, "workout:complete", {"workout_id": wid}))
    assert done.summary.set_count == 2
    notes = await rows(database_url, "SELECT id, notes FROM workout_sets WHERE user_id = $1 ORDER BY position", uid)
    assert [(str(r["id"]), r["notes"]) for r in notes] == [(sid, "fixed"), (other, None)]


async def test_completing_again_with_other_notes_is_refused_not_acked(user, database_url: str) -> None:
    uid, phone, watch = user
    wid = new_id()
    await ok(phone, "workout:start", {"workout_id": wid})
    await log_sets(phone, wid, [("curl", 15, 12)])
    ack = await ok(phone, "workout:complete", {"workout_id": wid, "notes": "done"})
    assert await ok(watch, "workout:complete", {"workout_id": wid, "notes": "done"}) == ack
    for other in ({"notes": "changed"}, {}):  # would be acked as stored while the row keeps "done"
        err = await error(watch, "workout:complete", {"workout_id": wid, **other})
        assert err["code"] == "conflict" and err["details"]["status"] == "completed", err
    (row,) = await rows(database_url, "SELECT notes FROM workouts WHERE user_id = $1", uid)
    assert row["notes"] == "done"

    # Two devices completing at once with other notes: one is stored and acked, the other refused.
    wid = new_id()
    await ok(phone, "workout:start", {"workout_id": wid})
    await log_sets(phone, wid, [("curl", 15, 10)])
    acks = await asyncio.gather(phone.emit("workout:complete", {"workout_id": wid, "notes": "A"}),
                                watch.emit("workout:complete", {"workout_id": wid, "notes": "B"}))
    assert sorted(a["ok"] for a in acks) == [False, True], acks
    refused = next(a for a in acks if not a["ok"])
    assert refused["error"]["code"] == "conflict"
    assert refused["error"]["details"]["status"] in ("completing", "completed")
    stored = "A" if acks[0]["ok"] else "B"
    (row,) = await rows(database_url, "SELECT notes FROM workouts WHERE user_id = $1 AND id = $2", uid,
                        uuid.UUID(wid))
    assert row["notes"] == stored


async def test_a_heavier_set_in_a_later_workout_beats_the_stored_record(user) -> None:
    _, phone, watch = user
    first = new_id()
    await ok(phone, "workout:start", {"workout_id": first})
    await log_sets(phone, first, [("deadlift", 140, 5)])
    await ok(phone, "workout:complete", {"workout_id": first})
    second = new_id()
    await ok(phone, "workout:start", {"workout_id": second})
    (same,) = await log_sets(phone, second, [("deadlift", 140, 5)])
    (heavier,) = await log_sets(phone, second, [("deadlift", 150, 2)])
    await asyncio.sleep(0.3)
    prs = [check("pr:achieved", e) for e in watch.named("pr:achieved") if e["workout_id"] == second]
    assert [pr.set_id for pr in prs] == [heavier]
    assert {(r.type, r.value, r.previous) for r in prs[0].records} >= {("max_weight", 150, 140)}


async def test_two_processes_completing_at_once_store_one_row(spawn, database_url: str) -> None:
    web_a, web_b = await asyncio.gather(spawn(), spawn())
    uid = f"user-{uuid.uuid4().hex[:8]}"
    a = await Device().connect(web_a.url, {"token": token(uid), "device_id": "a"})
    b = await Device().connect(web_b.url, {"token": token(uid), "device_id": "b"})
    try:
        wid = new_id()
        await ok(a, "workout:start", {"workout_id": wid})
        await log_sets(a, wid, [("squat", 100, 5)] * 20)
        acks = await asyncio.gather(a.emit("workout:complete", {"workout_id": wid}),
                                    b.emit("workout:complete", {"workout_id": wid}))
        # Both agree, or the loser of the race is told to retry and then agrees.
        final = [ack["data"] if ack["ok"] else await ok(dev, "workout:complete", {"workout_id": wid})
                 for ack, dev in zip(acks, (a, b), strict=True)]
        assert final[0] == final[1]
        assert check("workout:completed", final[0]).summary.set_count == 20
        assert len(await rows(database_url, "SELECT 1 FROM workouts WHERE user_id = $1", uid)) == 1
        assert len(await rows(database_url, "SELECT 1 FROM workout_sets WHERE user_id = $1", uid)) == 20
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_killed_between_commit_and_retirement_a_retry_acks_without_duplicates(
    user, settings, redis_url: str, database_url: str
) -> None:
    uid, phone, _ = user
    wid = new_id()
    await ok(phone, "workout:start", {"workout_id": wid})
    await log_sets(phone, wid, [("press", 50, 5), ("press", 52.5, 5)])
    # What a process does up to the commit, then "dies" before retiring the live state.
    prefix = settings.redis_prefix  # the same settings the user's server runs with
    redis = redis_client(redis_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        line = ScriptLine(redis_url)
        live = LiveState(redis, line, Keys(prefix), lambda u, e: asyncio.sleep(0, b"{}"), log_cap=1000)
        snapshot, notes = await live.complete_begin(uid, wid, None)
        await persist.Writer(pool).store(
            persist.rows_of(uid, msgspec.json.decode(snapshot, type=p.WorkoutSnapshot), notes))
    finally:
        await pool.close()
        await line.aclose()
        await redis.aclose()
    assert (await error(phone, "set:complete", {"workout_id": wid, "set_id": new_id(), "exercise_id": "press",
                                                "reps": 1}))["code"] == "conflict"  # frozen while completing
    ack = check("workout:completed", await ok(phone, "workout:complete", {"workout_id": wid}))
    assert ack.summary.set_count == 2
    assert len(await rows(database_url, "SELECT 1 FROM workouts WHERE user_id = $1", uid)) == 1
    assert len(await rows(database_url, "SELECT 1 FROM workout_sets WHERE user_id = $1", uid)) == 2


async def test_postgres_down_leaves_the_workout_live_and_a_retry_stores_it(
    redis_url: str, template_database: str, workdir: Path
) -> None:
    postgres = EmbeddedPostgres(workdir / "complete-postgres", durable=False).start()
    try:
        from db.migrate import migrate_url

        url = postgres.create_database("complete")
        await migrate_url(url)
        async with in_process(make_settings(redis_url, url)) as server:
            phone = await Device().connect(server, {"token": token("pg-down"), "device_id": "phone"})
            try:
                await phone.wait_for("session:ready")
                wid = new_id()
                await ok(phone, "workout:start", {"workout_id": wid})
                ids = await log_sets(phone, wid, [("lunge", 30, 10), ("lunge", 32.5, 8)])
                postgres.stop()
                err = await error(phone, "workout:complete", {"workout_id": wid})
                assert err["code"] == "unavailable"
                # Still live, nothing lost: the user trains on.
                more = await log_sets(phone, wid, [("lunge", 35, 6)])
                postgres.start()
                for _ in range(50):
                    ack = await phone.emit("workout:complete", {"workout_id": wid})
                    if ack["ok"]:
                        break
                    await asyncio.sleep(0.2)
                assert check("workout:completed", ack["data"]).summary.set_count == 3
                stored = await rows(url, "SELECT id FROM workout_sets ORDER BY position")
                assert [str(r["id"]) for r in stored] == ids + more
            finally:
                await phone.close()
    finally:
        postgres.stop()


async def test_idle_workouts_are_completed_or_discarded(settings, server: str, database_url: str) -> None:
    from realtime.live import idle_reaper

    devices = {}
    wids = {}
    uids = {}
    for name in ("with-sets", "empty", "fresh"):
        uid = uids[name] = f"idle-{name}-{uuid.uuid4().hex[:6]}"
        devices[name] = await Device().connect(server, {"token": token(uid), "device_id": "phone"})
        await devices[name].wait_for("session:ready")
        wids[name] = new_id()
        await ok(devices[name], "workout:start", {"workout_id": wids[name]})
    try:
        await log_sets(devices["with-sets"], wids["with-sets"], [("bike", 0, 1)])
        await asyncio.sleep(1.2)
        await ok(devices["fresh"], "workout:pause", {"workout_id": wids["fresh"]})  # active just now
        redis = redis_client(settings.redis_url)
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        try:
            line = ScriptLine(settings.redis_url)
            live = LiveState(
                redis, line, Keys(settings.redis_prefix), lambda u, e: asyncio.sleep(0, b"{}"), log_cap=1000)
            runtime = type("R", (), {"live": live, "writer": persist.Writer(pool)})()
            keys = Keys(settings.redis_prefix)
            fresh = keys.workout(uids["fresh"], wids["fresh"])[0]
            active = keys.active(shard_of(uids["fresh"]))
            started_at = await redis.zscore(active, fresh)  # the scripts leave the score at the start
            assert started_at is not None and int(started_at) < int(await redis.hget(fresh, "last_at"))
            assert await idle_reaper.reap_once(runtime, idle_s=1) == 2  # type: ignore[arg-type]
            assert await idle_reaper.reap_once(runtime, idle_s=1) == 0
            # The reaper moved the paused workout's score on to its last activity, and dropped none.
            assert await redis.zscore(active, fresh) == int(await redis.hget(fresh, "last_at"))
        finally:
            await pool.close()
            await line.aclose()
            await redis.aclose()
        (completed,) = await devices["with-sets"].wait_for("workout:completed")
        assert completed["summary"]["set_count"] == 1
        await devices["empty"].wait_for("workout:discarded")
        assert not devices["fresh"].named("workout:completed") and not devices["fresh"].named("workout:discarded")
        (stored,) = await rows(database_url, "SELECT notes FROM workouts WHERE id = $1", uuid.UUID(wids["with-sets"]))
        assert stored["notes"] == idle_reaper.AUTO_NOTE
    finally:
        await asyncio.gather(*(d.close() for d in devices.values()))


async def test_the_writer_batches_dedupes_and_isolates_a_bad_workout(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        writer = persist.Writer(pool, writers=1)
        uid = f"batch-{uuid.uuid4().hex[:6]}"

        def snapshot(name: str | None = "ok") -> p.WorkoutSnapshot:
            now = 1_790_000_000_000
            return p.WorkoutSnapshot(
                workout_id=new_id(), name=name, status="completing", started_at=now - 1000, paused_at=None,
                ended_at=now, room_id=None, plan=None, seq=2, stats=p.Stats(1, 100.0, 1, None), rest=None,
                records=[], sets=[p.SetRecord(new_id(), "bench", "normal", 20.0, 5, None, None, None, None, now)])

        good = [snapshot() for _ in range(10)]
        bad = snapshot(name="x" * 500)  # breaks a CHECK constraint of workouts.name
        twice = snapshot()
        jobs = [writer.store(persist.rows_of(uid, s, None)) for s in [*good, bad, twice, twice]]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        assert results[:10] == [None] * 10 and results[11:] == [None, None]
        assert isinstance(results[10], persist._NotStored)
        stored = {str(r["id"]) for r in await rows(database_url, "SELECT id FROM workouts WHERE user_id = $1", uid)}
        assert stored == {s.workout_id for s in [*good, twice]}
        assert len(await rows(database_url, "SELECT 1 FROM workout_sets WHERE user_id = $1", uid)) == 11
    finally:
        await pool.close()


async def test_a_deleted_workout_keeps_its_id_used_up(redis_url: str, database_url: str) -> None:
    # Deleting a workout from the history made its id free again: once the live state had let it
    # go, a replay of its offline start became a new live workout, and its completion stored the
    # deleted workout again.
    uid = f"user-{uuid.uuid4().hex[:8]}"
    settings = make_settings(redis_url, database_url, ended_keep_s=1)
    async with in_process(settings) as url:
        phone = await Device().connect(url, {"token": token(uid), "device_id": "phone"})
        redis = redis_client(redis_url)
        try:
            await phone.wait_for("session:ready")
            wid = new_id()
            await ok(phone, "workout:start", {"workout_id": wid, "name": "Gone"})
            await log_sets(phone, wid, [("squat", 100, 5)])
            await ok(phone, "workout:complete", {"workout_id": wid})
            async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token(uid)}"}) as http:
                assert (await http.delete(f"/api/v1/workouts/{wid}")).status_code == 204
                state = Keys(settings.redis_prefix).workout(uid, wid)[0]
                for _ in range(50):
                    if not await redis.exists(state):
                        break
                    await asyncio.sleep(0.1)
                assert not await redis.exists(state)
                err = await error(phone, "workout:start", {"workout_id": wid, "name": "Gone"})
                assert (err["code"], err["details"]) == ("conflict", {"workout_id": wid, "status": "completed"})
                assert (await http.get(f"/api/v1/workouts/{wid}")).status_code == 404
            assert await rows(database_url, "SELECT id FROM workouts WHERE user_id = $1", uid) == []
        finally:
            await redis.aclose()
            await phone.close()
