"""Two real server processes sharing Redis: fan-out, gapless seq, and kill -9 mid-workout."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from .clients import Device, check, ok, token
from .test_live_workout import new_id

pytestmark = pytest.mark.every_redis


@pytest.fixture
async def two_processes(spawn) -> AsyncIterator[tuple[list, str, Device, Device]]:
    """Two web processes from the Procfile, and one device of the same user on each."""
    # A hundred sets at once from two devices tie on the millisecond and land out of order:
    # what that costs the user's budget is test_user_budget's subject, not this file's.
    unlimited = {"USER_BUDGET_PER_S": "100000", "USER_BUDGET_BURST": "100000"}
    webs = list(await asyncio.gather(spawn(**unlimited), spawn(**unlimited)))
    uid = f"user-{uuid.uuid4().hex[:8]}"
    devices = []
    for i, web in enumerate(webs):
        device = await Device().connect(web.url, {"token": token(uid), "device_id": f"device-{i}"})
        await device.wait_for("session:ready")
        devices.append(device)
    yield webs, uid, devices[0], devices[1]
    await asyncio.gather(*(d.close() for d in devices))


async def test_every_event_kind_reaches_the_device_on_the_other_process(two_processes) -> None:
    _, _, a, b = two_processes
    wid, s1, s2 = new_id(), new_id(), new_id()
    await ok(a, "workout:start", {"workout_id": wid, "name": "Legs"})
    await ok(b, "set:complete", {"workout_id": wid, "set_id": s1, "exercise_id": "squat", "weight_kg": 100,
                                 "reps": 5})
    await ok(a, "set:complete", {"workout_id": wid, "set_id": s2, "exercise_id": "squat", "weight_kg": 60,
                                 "reps": 8, "set_type": "warmup"})
    await ok(b, "set:update", {"workout_id": wid, "set_id": s2, "reps": 10})
    await ok(a, "set:delete", {"workout_id": wid, "set_id": s2})
    await ok(b, "rest:start", {"workout_id": wid, "duration_s": 30})
    await ok(a, "rest:adjust", {"workout_id": wid, "delta_s": -15})
    await ok(b, "rest:skip", {"workout_id": wid})
    await ok(a, "rest:start", {"workout_id": wid, "duration_s": 0.2})
    await ok(b, "workout:pause", {"workout_id": wid})
    last = await ok(a, "workout:resume", {"workout_id": wid})
    final_seq = last["seq"] + 1  # the short timer's finished event comes last
    kinds = set()
    for device in (a, b):
        await device.wait_seq(wid, final_seq)
        await asyncio.sleep(0.1)
        assert device.seqs(wid) == list(range(1, final_seq + 1))
        kinds |= {name for name, _ in device.workout_events(wid)}
    assert kinds == {"workout:started", "set:completed", "pr:achieved", "set:updated", "set:deleted",
                     "rest:timer", "workout:paused", "workout:resumed"}
    assert a.workout_events(wid) == b.workout_events(wid)
    discarded = await ok(b, "workout:discard", {"workout_id": wid})
    name, data = await a.wait_seq(wid, discarded["seq"])
    assert name == "workout:discarded"


async def test_concurrent_sets_from_two_processes_are_gapless(two_processes) -> None:
    _, _, a, b = two_processes
    wid = new_id()
    await ok(a, "workout:start", {"workout_id": wid})
    payloads = [{"workout_id": wid, "set_id": new_id(), "exercise_id": f"ex{i % 3}", "reps": 1 + i % 7,
                 "weight_kg": 20 + i % 11} for i in range(100)]
    acks = await asyncio.gather(*(ok(a if i % 2 else b, "set:complete", p) for i, p in enumerate(payloads)))
    top = max(ack["seq"] for ack in acks)
    for device in (a, b):
        await device.wait_seq(wid, top)
        await asyncio.sleep(0.2)
        seqs = device.seqs(wid)
        assert seqs == list(range(1, len(seqs) + 1))  # gapless, no duplicate, in order
        completed = [d for name, d in device.workout_events(wid) if name == "set:completed"]
        assert sorted(d["set"]["set_id"] for d in completed) == sorted(p["set_id"] for p in payloads)
    reply = await ok(b, "workout:sync", {"workout_id": wid, "since_seq": 0})
    assert [e["data"]["seq"] for e in reply["events"]] == list(range(1, len(reply["events"]) + 1))
    stats = check("set:completed", [e for e in reply["events"] if e["event"] == "set:completed"][-1]["data"])
    assert stats.stats.set_count == 100


async def test_kill_9_mid_rest_another_process_fires_it_once_and_nothing_is_lost(two_processes) -> None:
    (web_a, web_b), uid, a, b = two_processes
    wid = new_id()
    await ok(a, "workout:start", {"workout_id": wid})
    acked = []
    for i in range(5):
        acked.append(await ok(a, "set:complete", {"workout_id": wid, "set_id": new_id(), "exercise_id": "pull",
                                                  "reps": 5 + i}))
    running = check("rest:timer", await ok(a, "rest:start", {"workout_id": wid, "duration_s": 1.5}))
    web_a.kill9()  # the process that started the timer, and device A's server
    name, finished = await b.wait_seq(wid, running.seq + 1, timeout=5)
    assert name == "rest:timer" and finished["status"] == "finished"
    assert finished["server_time"] - running.ends_at < 1000  # fired by process B, on its next look
    await asyncio.sleep(1.0)
    assert [d["status"] for n, d in b.workout_events(wid) if n == "rest:timer"] == ["running", "finished"]

    # Device A comes back on the surviving process and catches up from its last seq.
    last_seen = max(a.seqs(wid))
    back = await Device().connect(web_b.url, {"token": token(uid), "device_id": "device-0"})
    try:
        (ready,) = await back.wait_for("session:ready")
        snapshot = check("session:ready", ready).active_workout
        assert snapshot is not None
        assert {s.set_id for s in snapshot.sets} == {ack["set"]["set_id"] for ack in acked}
        reply = await ok(back, "workout:sync", {"workout_id": wid, "since_seq": last_seen})
        replayed = [e["data"]["seq"] for e in reply["events"]]
        assert replayed == list(range(last_seen + 1, snapshot.seq + 1))
    finally:
        await back.close()
