"""Group rooms on real processes: presence across processes, activity to members only, kill -9."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path

import msgspec
import pytest
import socketio

from liveset.dev.embedded import EmbeddedRedis
from realtime.core import protocol

from .clients import Device, check, error, ok, token
from .conftest import make_settings
from .servers import in_process
from .test_live_workout import new_id

pytestmark = pytest.mark.every_redis


def presence(entries: list[dict]) -> dict[str, tuple[int, str | None]]:
    return {e["user_id"]: (e["device_count"], e["workout_id"]) for e in entries}


async def connect(url: str, uid: str, device: str = "phone") -> Device:
    d = await Device().connect(url, {"token": token(uid), "device_id": device})
    await d.wait_for("session:ready")
    return d


def users(*names: str) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"{n}-{tag}" for n in names]


async def test_presence_and_activity_across_two_processes(spawn) -> None:
    web1, web2 = await asyncio.gather(spawn(), spawn())
    ann, bob, cat = users("ann", "bob", "cat")
    ann_phone = await connect(web1.url, ann)
    bob_phone = await connect(web2.url, bob)
    cat_phone = await connect(web1.url, cat)  # not a member: must hear nothing of the room
    ann_watch = await connect(web2.url, ann, "watch")
    try:
        created = check_room(await ok(ann_phone, "room:create", {"name": "Tuesday crew"}))
        room_id, code = created["room"]["room_id"], created["room"]["invite_code"]
        assert presence(created["presence"]) == {ann: (1, None)}
        joined = await ok(bob_phone, "room:join", {"invite_code": code})
        assert presence(joined["presence"]) == {ann: (1, None), bob: (1, None)}
        # Every device sees every change, its own included: Ann's join, then Bob's.
        seen = await ann_phone.wait_for("room:presence", count=2)
        assert [[j.user_id for j in check("room:presence", e).joins] for e in seen] == [[ann], [bob]]
        again = await ok(ann_watch, "room:join", {"room_id": room_id})  # a member needs no code
        assert presence(again["presence"])[ann] == (2, None)  # one user, two devices, two processes

        wid = new_id()
        await ok(ann_phone, "workout:start", {"workout_id": wid, "room_id": room_id})
        sid = new_id()
        await ok(ann_watch, "set:complete", {"workout_id": wid, "set_id": sid, "exercise_id": "bench",
                                             "weight_kg": 60, "reps": 8})
        activity = await bob_phone.wait_for("room:activity", count=3)
        assert [a["type"] for a in activity] == ["workout_started", "set_completed", "pr_achieved"]
        assert all(check("room:activity", a).user_id == ann for a in activity)
        assert activity[1]["data"]["set"]["set_id"] == sid
        updates = [check("room:presence", e) for e in bob_phone.named("room:presence")]
        assert any(j.user_id == ann and j.workout_id == wid for u in updates for j in u.joins)

        await ok(bob_phone, "room:leave", {"room_id": room_id})
        left = await ann_phone.wait_for("room:presence", count=5)
        assert [e.user_id for e in check("room:presence", left[-1]).leaves] == [bob]
        await ok(ann_phone, "set:complete", {"workout_id": wid, "set_id": new_id(), "exercise_id": "bench",
                                             "weight_kg": 40, "reps": 5})
        await ok(ann_phone, "workout:complete", {"workout_id": wid})
        await ann_watch.wait_for("room:activity", count=5)
        await asyncio.sleep(0.3)
        assert len(bob_phone.named("room:activity")) == 3  # nothing after leaving
        assert cat_phone.named("room:activity") == [] and cat_phone.named("room:presence") == []
        assert (await error(cat_phone, "room:join", {"room_id": room_id}))["code"] == "not_found"
        assert (await error(cat_phone, "workout:start", {"workout_id": new_id(), "room_id": room_id}))[
            "code"] == "not_found"
    finally:
        await asyncio.gather(*(d.close() for d in (ann_phone, bob_phone, cat_phone, ann_watch)))


def check_room(data: dict) -> dict:
    msgspec.convert(data, protocol.RoomJoined, strict=True)
    return data


async def test_killed_process_leaves_presence_within_the_bound_once(spawn) -> None:
    web1, web2 = await asyncio.gather(spawn(), spawn())
    ann, bob = users("ann", "bob")
    ann_phone = await connect(web1.url, ann)
    bob_phone = await connect(web2.url, bob)
    try:
        room = await ok(ann_phone, "room:create", {"name": "Crash test"})
        await ok(bob_phone, "room:join", {"invite_code": room["room"]["invite_code"]})
        await ann_phone.wait_for("room:presence", count=2)  # Ann's join, Bob's join
        killed = time.monotonic()
        web2.kill9()
        events = await ann_phone.wait_for("room:presence", count=3, timeout=20)
        took = time.monotonic() - killed
        assert [e["user_id"] for e in events[2]["leaves"]] == [bob]
        assert took <= 15, took
        await asyncio.sleep(4)  # another heartbeat: the leave is announced once
        assert len(ann_phone.named("room:presence")) == 3
    finally:
        await asyncio.gather(ann_phone.close(), bob_phone.close())


async def test_invites_guesses_rotation_size_and_removal(redis_url: str, database_url: str) -> None:
    settings = make_settings(redis_url, database_url, max_room_members=2)
    owner, friend, third, guesser = users("owner", "friend", "third", "guesser")
    async with in_process(settings) as url:
        o, f, t, g = [await connect(url, u) for u in (owner, friend, third, guesser)]
        try:
            room = (await ok(o, "room:create", {"name": "Small"}))["room"]
            assert len(room["invite_code"]) >= 16  # 96 random bits
            await ok(f, "room:join", {"invite_code": room["invite_code"]})
            full = await error(t, "room:join", {"invite_code": room["invite_code"]})
            assert full["code"] == "conflict" and full["details"] == {"max_members": 2}
            assert (await error(f, "room:rotate_invite", {"room_id": room["room_id"]}))["code"] == "forbidden"
            rotated = (await ok(o, "room:rotate_invite", {"room_id": room["room_id"]}))["room"]
            assert rotated["invite_code"] != room["invite_code"]
            for _ in range(10):
                assert (await error(g, "room:join", {"invite_code": "wrong-" + uuid.uuid4().hex}))[
                    "code"] == "not_found"
            limited = await error(g, "room:join", {"invite_code": rotated["invite_code"]})
            assert limited["code"] == "rate_limited"
            # The owner removes the friend, whose workout was started in the room: they hear nothing
            # of the room after that, and the room nothing of their workout (it went on posting).
            theirs = new_id()
            await ok(f, "workout:start", {"workout_id": theirs, "room_id": room["room_id"]})
            await o.wait_for("room:activity")
            await ok(o, "room:remove", {"room_id": room["room_id"], "user_id": friend})
            await ok(f, "set:complete", {"workout_id": theirs, "set_id": new_id(), "exercise_id": "row",
                                         "weight_kg": 60, "reps": 8})
            assert (await ok(f, "workout:sync", {"workout_id": theirs, "since_seq": 99}))["events"] == []
            await ok(f, "workout:complete", {"workout_id": theirs})
            wid = new_id()
            await ok(o, "workout:start", {"workout_id": wid, "room_id": room["room_id"]})
            await o.wait_for("room:activity", count=2)
            await asyncio.sleep(0.3)
            assert [a["user_id"] for a in o.named("room:activity")] == [friend, owner]
            assert [a["type"] for a in f.named("room:activity")] == ["workout_started"]  # before the removal
            assert (await error(f, "room:join", {"room_id": room["room_id"]}))["code"] == "not_found"
            await ok(t, "room:join", {"invite_code": rotated["invite_code"]})  # now there is a place
        finally:
            await asyncio.gather(*(d.close() for d in (o, f, t, g)))


async def test_a_member_looping_leave_and_join_is_refused_until_the_rate_allows(
    redis_url: str, database_url: str
) -> None:
    # Ten devices of one member looping room:leave and room:join sent every other member's
    # devices some 94 presence events a second, each with its Postgres writes.
    settings = make_settings(redis_url, database_url, connect_rate_per_s=2.0, connect_burst=4)
    host, looper = users("host", "looper")
    async with in_process(settings) as url:
        h, lp = await connect(url, host), await connect(url, looper)
        try:
            room = (await ok(h, "room:create", {"name": "Loop"}))["room"]  # the host's own count
            for event in ("room:join", "room:leave", "room:join", "room:leave"):
                target = {"invite_code": room["invite_code"]} if event == "room:join" else {"room_id": room["room_id"]}
                await ok(lp, event, target)
            await asyncio.sleep(0.2)
            heard = len([e for e, _ in h.events if e == "room:presence"])
            refused = await error(lp, "room:join", {"invite_code": room["invite_code"]})
            assert refused["code"] == "rate_limited" and 0 < refused["details"]["retry_after_ms"] <= 500
            await asyncio.sleep(0.2)
            assert len([e for e, _ in h.events if e == "room:presence"]) == heard  # the refusal told no one
            await asyncio.sleep(refused["details"]["retry_after_ms"] / 1000)
            await ok(lp, "room:join", {"invite_code": room["invite_code"]})
            await ok(h, "room:leave", {"room_id": room["room_id"]})  # another user's rate is their own
        finally:
            await h.close()
            await lp.close()


async def test_many_devices_reconnecting_at_once_leave_presence_exact(redis_url: str, database_url: str) -> None:
    members = users(*[f"m{i}" for i in range(8)])
    async with in_process(make_settings(redis_url, database_url)) as url:
        owner = await connect(url, members[0], "d0")
        room = (await ok(owner, "room:create", {"name": "Storm"}))["room"]
        devices = [owner]
        for i, uid in enumerate(members):
            for d in range(3 if i else 2):
                device = owner if (i == 0 and d == 0) else await connect(url, uid, f"d{d}")
                if device is not owner:
                    await ok(device, "room:join", {"invite_code": room["invite_code"]})
                    devices.append(device)
        # Everyone but the owner's first device drops and comes back at once.
        await asyncio.gather(*(d.close() for d in devices[1:]))

        async def back(uid: str, name: str) -> Device:
            d = await connect(url, uid, name)
            await ok(d, "room:join", {"room_id": room["room_id"]})
            return d

        again = await asyncio.gather(*(back(uid, f"d{d}") for i, uid in enumerate(members)
                                       for d in range(3 if i else 2) if not (i == 0 and d == 0)))
        try:
            final = await ok(owner, "room:join", {"room_id": room["room_id"]})
            expected = {uid: (3 if i else 2, None) for i, uid in enumerate(members)}
            assert presence(final["presence"]) == expected
        finally:
            await asyncio.gather(owner.close(), *(d.close() for d in again))


async def test_rest_lists_my_rooms_and_shows_members_and_presence(redis_url: str, database_url: str) -> None:
    import httpx

    owner, friend, stranger = users("owner", "friend", "stranger")
    async with in_process(make_settings(redis_url, database_url)) as url:
        o = await connect(url, owner)
        f = await connect(url, friend)
        try:
            room = (await ok(o, "room:create", {"name": "REST room"}))["room"]
            await ok(f, "room:join", {"invite_code": room["invite_code"]})
            async with httpx.AsyncClient(base_url=url) as http:
                mine = (await http.get("/api/v1/rooms", headers={"Authorization": f"Bearer {token(friend)}"})).json()
                assert [r["room_id"] for r in mine["data"]] == [room["room_id"]]
                detail = (await http.get(f"/api/v1/rooms/{room['room_id']}",
                                         headers={"Authorization": f"Bearer {token(owner)}"})).json()
                assert detail["members"] == [owner, friend]
                assert presence(detail["presence"]) == {owner: (1, None), friend: (1, None)}
                hidden = await http.get(f"/api/v1/rooms/{room['room_id']}",
                                        headers={"Authorization": f"Bearer {token(stranger)}"})
                assert hidden.status_code == 404
        finally:
            await asyncio.gather(o.close(), f.close())


async def test_a_device_gone_while_redis_was_down_holds_no_place_once_it_is_back(
    database_url: str, workdir: Path,
) -> None:
    """Its process lives on, so no peer purges its entries: the process itself must remove
    them once Redis answers again, from the device limit and from room presence."""
    redis = EmbeddedRedis(workdir / "ghost-valkey", persist=True).start()
    (uid,) = users("ghost")
    try:
        async with in_process(make_settings(redis.url, database_url, max_devices_per_user=2)) as url:
            phone, watch = await connect(url, uid, "phone"), await connect(url, uid, "watch")
            room = (await ok(phone, "room:create", {"name": "Ghosts"}))["room"]
            await ok(watch, "room:join", {"room_id": room["room_id"]})
            redis.stop()
            await watch.close()  # its cleanup meets no Redis
            await asyncio.sleep(1)
            redis.start()  # same port and data: the app reconnects by itself
            tablet = Device()
            for _ in range(100):  # a heartbeat (3 s) after Redis is back, the watch's place is free
                with contextlib.suppress(socketio.exceptions.ConnectionError):
                    await tablet.connect(url, {"token": token(uid), "device_id": "tablet"})
                    break
                assert any(code in str(tablet.connect_error) for code in ("conflict", "unavailable"))
                tablet = Device()
                await asyncio.sleep(0.1)
            try:
                await tablet.wait_for("session:ready")
                again = await ok(phone, "room:join", {"room_id": room["room_id"]})
                assert presence(again["presence"]) == {uid: (1, None)}
            finally:
                await asyncio.gather(phone.close(), tablet.close())
    finally:
        redis.stop()
