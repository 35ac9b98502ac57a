"""Personal records: standing records from Postgres, ties, warm-ups, edits and deletes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from realtime.core.keys import Keys
from realtime.core.records import weight_key
from realtime.core.settings import Settings

from .clients import check, error, ok
from .test_live_workout import new_id

pytestmark = pytest.mark.every_redis


def records_of(ack: dict) -> dict[str, tuple]:
    """type (and weight for max_reps) -> (value, previous, set_id)."""
    out = {}
    for r in ack["records"]:
        key = r["type"] if r["type"] != "max_reps" else f"max_reps@{weight_key(r['weight_kg'])}"
        out[key] = (r["value"], r["previous"], r["set_id"])
    return out


async def log_set(device, wid: str, **fields) -> tuple[str, dict]:
    sid = new_id()
    ack = await ok(device, "set:complete", {"workout_id": wid, "set_id": sid, "exercise_id": "bench", **fields})
    check("set:completed", ack)
    return sid, ack


async def store_history(database_url: str, user_id: str, rows: list[tuple[str, float, float]]) -> None:
    """Standing records of `user_id` for bench, as a finished earlier workout would leave them."""
    conn = await asyncpg.connect(database_url)
    now = datetime.now(UTC)
    wid, sid = uuid.uuid4(), uuid.uuid4()
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO workouts (user_id, id, started_at, completed_at, duration_s, total_volume_kg, set_count,"
                " exercise_count) VALUES ($1, $2, $3, $3, 0, 0, 1, 1)", user_id, wid, now)
            await conn.execute(
                "INSERT INTO workout_sets (user_id, workout_id, id, position, exercise_id, weight_kg, reps,"
                " completed_at) VALUES ($1, $2, $3, 0, 'bench', 100, 5, $4)", user_id, wid, sid, now)
            for rtype, weight, value in rows:
                await conn.execute(
                    "INSERT INTO personal_records (user_id, exercise_id, type, weight_kg, value, workout_id, set_id,"
                    " achieved_at) VALUES ($1, 'bench', $2, $3, $4, $5, $6, $7)",
                    user_id, rtype, weight, value, wid, sid, now)
    finally:
        await conn.close()


async def test_first_sets_ever_set_every_record(user) -> None:
    _, phone, watch = user
    wid = new_id()
    await ok(phone, "workout:start", {"workout_id": wid})
    sid, ack = await log_set(phone, wid, weight_kg=60, reps=10)
    assert records_of(ack) == {
        "max_weight": (60, None, sid), "est_1rm": (80, None, sid), "max_volume": (600, None, sid),
        "max_reps@60": (10, None, sid),
    }
    (pr,) = await watch.wait_for("pr:achieved")
    achieved = check("pr:achieved", pr)
    assert achieved.seq == ack["seq"] + 1 and achieved.set_id == sid and achieved.exercise_id == "bench"
    assert {r.type for r in achieved.records} == {"max_weight", "est_1rm", "max_volume", "max_reps"}


async def test_ties_and_warmups_are_not_records(user, database_url: str) -> None:
    uid, phone, watch = user
    await store_history(database_url, uid, [("max_weight", 0, 100), ("max_reps", 100, 5), ("est_1rm", 0, 116.67),
                                            ("max_volume", 0, 500)])
    wid = new_id()
    await ok(phone, "workout:start", {"workout_id": wid})
    _, tie = await log_set(phone, wid, weight_kg=100, reps=5)
    assert tie["records"] == []
    _, warm = await log_set(phone, wid, weight_kg=140, reps=8, set_type="warmup")
    assert warm["records"] == []
    heavier, ack = await log_set(phone, wid, weight_kg=102.5, reps=3)
    assert records_of(ack) == {"max_weight": (102.5, 100, heavier), "max_reps@102.5": (3, None, heavier)}
    await asyncio.sleep(0.2)
    prs = [check("pr:achieved", e) for e in watch.named("pr:achieved")]
    assert [p.set_id for p in prs] == [heavier]
    assert {(r.type, r.previous) for r in prs[0].records} == {("max_weight", 100), ("max_reps", None)}


async def test_a_plan_has_its_exercises_standing_records_loaded_at_start(user, settings: Settings,
                                                                         database_url: str) -> None:
    uid, phone, _ = user
    await store_history(database_url, uid, [("max_weight", 0, 100)])
    wid = new_id()
    await ok(phone, "workout:start", {"workout_id": wid, "plan": [{"exercise_id": "bench", "sets": 3},
                                                                  {"exercise_id": "squat"}]})
    redis = Redis.from_url(settings.redis_url)
    try:
        base = await redis.hgetall(Keys(settings.redis_prefix).workout(uid, wid)[6])
    finally:
        await redis.aclose()
    assert {e.decode(): msgspec.json.decode(b) for e, b in base.items()} == {"bench": {"max_weight": 100},
                                                                             "squat": {}}
    _, ack = await log_set(phone, wid, weight_kg=90, reps=5)
    assert "max_weight" not in records_of(ack)  # weighed against the standing 100 kg
    _, ack = await log_set(phone, wid, weight_kg=105, reps=1)
    assert records_of(ack)["max_weight"][:2] == (105, 100)


async def test_a_plan_whose_records_cannot_be_read_still_starts(user, database_url: str) -> None:
    """The plan's records are a head start only: without them the workout starts, and the
    first set of the exercise asks for them again, saying so while they cannot be read."""
    _, phone, _ = user
    wid = new_id()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("ALTER TABLE personal_records RENAME TO personal_records_away")
        await ok(phone, "workout:start", {"workout_id": wid, "plan": [{"exercise_id": "bench"}]})
        failed = await error(phone, "set:complete", {"workout_id": wid, "set_id": new_id(), "exercise_id": "bench",
                                                     "weight_kg": 60, "reps": 5})
        assert failed["code"] == "unavailable"
    finally:
        await conn.execute("ALTER TABLE personal_records_away RENAME TO personal_records")
        await conn.close()
    sid, ack = await log_set(phone, wid, weight_kg=60, reps=5)
    assert records_of(ack)["max_weight"] == (60, None, sid)


async def test_more_reps_at_the_same_weight(user) -> None:
    _, phone, _ = user
    wid = new_id()
    await ok(phone, "workout:start", {"workout_id": wid})
    first, _ = await log_set(phone, wid, weight_kg=80, reps=5)
    second, ack = await log_set(phone, wid, weight_kg=80, reps=6)
    records = records_of(ack)
    assert records["max_reps@80"] == (6, 5, second)
    assert records["max_weight"] == (80, None, first)  # a tie with the first set
    assert records["max_volume"] == (480, 400, second)


async def test_edits_and_deletes_recompute_and_withdraw(user) -> None:
    _, phone, watch = user
    wid = new_id()
    await ok(phone, "workout:start", {"workout_id": wid})
    light, _ = await log_set(phone, wid, weight_kg=90, reps=5)
    heavy, _ = await log_set(phone, wid, weight_kg=95, reps=5)
    # Editing the heavy set down withdraws its records: the light set holds them again.
    down = check("set:updated", await ok(phone, "set:update", {"workout_id": wid, "set_id": heavy, "weight_kg": 85}))
    holders = {(r.type, r.set_id) for r in down.records if r.type != "max_reps"}
    assert holders == {("max_weight", light), ("est_1rm", light), ("max_volume", light)}
    # Editing it up again makes it the record holder, announced with pr:achieved.
    up = check("set:updated", await ok(phone, "set:update", {"workout_id": wid, "set_id": heavy, "weight_kg": 97.5}))
    assert {r.set_id for r in up.records if r.type == "max_weight"} == {heavy}
    name, pr = await watch.wait_seq(wid, up.seq + 1)
    assert name == "pr:achieved" and pr["set_id"] == heavy
    # Deleting it hands the records back to the light set.
    gone = check("set:deleted", await ok(phone, "set:delete", {"workout_id": wid, "set_id": heavy}))
    assert {(r.type, r.value, r.set_id) for r in gone.records if r.type == "max_weight"} == {("max_weight", 90, light)}
    # A warm-up edit removes a set from the records altogether.
    warm = check("set:updated", await ok(phone, "set:update", {"workout_id": wid, "set_id": light,
                                                                "set_type": "warmup"}))
    assert warm.records == []


async def test_the_same_sets_give_the_same_records_in_any_arrival_order(user) -> None:
    _, phone, _ = user
    outcomes = []
    for order in ((0, 1, 2), (2, 1, 0), (1, 2, 0)):
        wid = new_id()
        await ok(phone, "workout:start", {"workout_id": wid})
        sets = [{"set_id": new_id(), "weight_kg": w, "reps": r, "completed_at": 1_700_000_000_000 + i}
                for i, (w, r) in enumerate([(50, 10), (60, 8), (55, 12)])]
        for i in order:
            await ok(phone, "set:complete", {"workout_id": wid, "exercise_id": "bench", **sets[i]})
        snapshot = (await ok(phone, "workout:sync", {"workout_id": wid, "since_seq": 10_000}))
        assert snapshot == {"events": []}
        reply = await ok(phone, "workout:sync", {"workout_id": wid, "since_seq": 0})
        last = [e["data"] for e in reply["events"] if e["event"] == "set:completed"][-1]
        ids = {s["set_id"]: i for i, s in enumerate(sets)}
        outcomes.append(sorted((r["type"], r["value"], ids[r["set_id"]]) for r in last["records"]))
        await ok(phone, "workout:pause", {"workout_id": wid})  # any change; then start the next one
        await _end(phone, wid)
    assert outcomes[0] == outcomes[1] == outcomes[2]


async def _end(device, wid: str) -> None:
    ack = await device.emit("workout:discard", {"workout_id": wid})
    assert ack["ok"] is True, ack
