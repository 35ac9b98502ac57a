"""The REST side against real Postgres: auth, pagination, one workout, delete with records, analytics."""

from __future__ import annotations

import asyncio
import base64
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from db import workouts as db_workouts
from db.records import rederive

from .clients import Device, ok, token
from .test_live_workout import new_id


def bearer(uid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(uid)}"}


@pytest.fixture
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server) as client:
        yield client


async def store(database_url: str, uid: str, completed_at: datetime, sets: list[tuple[str, float, int]],
                set_type: str = "normal") -> uuid.UUID:
    """A completed workout written the way workout:complete writes it, and its records derived."""
    wid = uuid.uuid4()
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            done = int(completed_at.timestamp() * 1000)
            await db_workouts.store_completed(conn, [(
                uid, wid, "w", None, None, done - 3_600_000, done, 3600,
                sum(w * r for _, w, r in sets), len(sets), len({e for e, _, _ in sets}), None)], [
                (uid, wid, uuid.uuid4(), i, e, set_type, w, r, None, None, None, None, done - 60_000 * (len(sets) - i))
                for i, (e, w, r) in enumerate(sets)], [])
            await rederive(conn, uid, sorted({e for e, _, _ in sets}))
    finally:
        await conn.close()
    return wid


def problem_of(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["code"] == code and body["title"]
    return body


async def test_every_api_route_needs_a_valid_bearer_token(http: httpx.AsyncClient) -> None:
    for path in ("/api/v1/workouts", "/api/v1/workouts/active", f"/api/v1/workouts/{uuid.uuid4()}",
                 "/api/v1/exercises/bench/records", "/api/v1/exercises/bench/history", "/api/v1/analytics/volume"):
        problem_of(await http.get(path), 401, "unauthorized")
        problem_of(await http.get(path, headers={"Authorization": "Bearer nope"}), 401, "unauthorized")
        expired = {"Authorization": f"Bearer {token('u', ttl_s=-5)}"}
        assert "expired" in problem_of(await http.get(path, headers=expired), 401, "unauthorized")["detail"]


async def test_pagination_walks_every_workout_once_while_new_ones_arrive(http, database_url: str) -> None:
    uid = f"pager-{uuid.uuid4().hex[:6]}"
    base = datetime(2026, 1, 1, tzinfo=UTC)
    existing = {await store(database_url, uid, base + timedelta(hours=i), [("bench", 50, 5)]) for i in range(23)}
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        page = (await http.get("/api/v1/workouts", params=query, headers=bearer(uid))).json()
        seen += [w["workout_id"] for w in page["data"]]
        # Meanwhile the user completes more workouts: newer than anything already listed.
        await store(database_url, uid, datetime.now(UTC), [("row", 40, 8)])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    old = [s for s in seen if uuid.UUID(s) in existing]
    assert sorted(old) == sorted(str(w) for w in existing) and len(old) == len(set(old))
    times = [w for w in seen]
    assert len(times) == len(set(times))  # nothing twice


async def test_one_workout_with_its_sets_and_only_for_its_owner(http, database_url: str) -> None:
    uid = f"owner-{uuid.uuid4().hex[:6]}"
    wid = await store(database_url, uid, datetime(2026, 2, 1, tzinfo=UTC), [("squat", 100, 5), ("squat", 110, 3)])
    body = (await http.get(f"/api/v1/workouts/{wid}", headers=bearer(uid))).json()
    assert body["workout_id"] == str(wid) and [s["weight_kg"] for s in body["sets"]] == [100, 110]
    problem_of(await http.get(f"/api/v1/workouts/{wid}", headers=bearer("someone-else")), 404, "not_found")
    problem_of(await http.delete(f"/api/v1/workouts/{wid}", headers=bearer("someone-else")), 404, "not_found")
    bad = problem_of(await http.get("/api/v1/workouts/not-a-uuid", headers=bearer(uid)), 400, "invalid_payload")
    assert bad["invalid_params"] == [{"name": "workout_id", "reason": "a UUID"}]


async def test_deleting_a_workout_restores_the_records_it_beat(http, database_url: str) -> None:
    uid = f"records-{uuid.uuid4().hex[:6]}"
    first = await store(database_url, uid, datetime(2026, 3, 1, tzinfo=UTC), [("bench", 100, 5)])
    later = await store(database_url, uid, datetime(2026, 3, 8, tzinfo=UTC), [("bench", 110, 2)])
    records = {r["type"]: r for r in (await http.get("/api/v1/exercises/bench/records",
                                                      headers=bearer(uid))).json()["data"]
               if r["type"] != "max_reps"}
    assert records["max_weight"]["value"] == 110 and records["max_weight"]["workout_id"] == str(later)
    assert records["max_volume"]["value"] == 500 and records["max_volume"]["workout_id"] == str(first)
    assert (await http.delete(f"/api/v1/workouts/{later}", headers=bearer(uid))).status_code == 204
    after = {r["type"]: r for r in (await http.get("/api/v1/exercises/bench/records",
                                                    headers=bearer(uid))).json()["data"]}
    assert after["max_weight"]["value"] == 100 and after["max_weight"]["workout_id"] == str(first)
    assert {r["weight_kg"] for r in (await http.get("/api/v1/exercises/bench/records", headers=bearer(uid))).json()[
        "data"] if r["type"] == "max_reps"} == {100}
    problem_of(await http.get(f"/api/v1/workouts/{later}", headers=bearer(uid)), 404, "not_found")


async def test_deleting_a_workout_during_a_live_one_rejudges_its_sets(http, server: str, database_url: str) -> None:
    uid = f"rejudge-{uuid.uuid4().hex[:6]}"
    heavy = await store(database_url, uid, datetime(2026, 3, 1, tzinfo=UTC), [("bench", 120, 5)])
    device = await Device().connect(server, {"token": token(uid), "device_id": "phone"})
    try:
        await device.wait_for("session:ready")
        wid = new_id()
        await ok(device, "workout:start", {"workout_id": wid})
        sid = new_id()
        ack = await ok(device, "set:complete", {"workout_id": wid, "set_id": sid, "exercise_id": "bench",
                                                "weight_kg": 100, "reps": 5})
        assert "max_weight" not in {r["type"] for r in ack["records"]}  # 120 stands
        assert (await http.delete(f"/api/v1/workouts/{heavy}", headers=bearer(uid))).status_code == 204
        live = (await http.get("/api/v1/workouts/active", headers=bearer(uid))).json()
        assert {(r["type"], r["value"], r["previous"], r["set_id"]) for r in live["records"]} >= {
            ("max_weight", 100, None, sid)}
        done = await ok(device, "workout:complete", {"workout_id": wid})
        assert ("max_weight", 100) in {(r["type"], r["value"]) for r in done["summary"]["prs"]}
    finally:
        await device.close()
    standing = (await http.get("/api/v1/exercises/bench/records", headers=bearer(uid))).json()["data"]
    assert {(r["type"], r["value"], r["workout_id"]) for r in standing} >= {("max_weight", 100, wid)}


async def test_warmups_never_hold_records(http, database_url: str) -> None:
    uid = f"warm-{uuid.uuid4().hex[:6]}"
    await store(database_url, uid, datetime(2026, 3, 1, tzinfo=UTC), [("press", 60, 5)], set_type="warmup")
    assert (await http.get("/api/v1/exercises/press/records", headers=bearer(uid))).json()["data"] == []


async def test_exercise_history_pages_newest_first(http, database_url: str) -> None:
    uid = f"hist-{uuid.uuid4().hex[:6]}"
    for day in range(1, 8):
        await store(database_url, uid, datetime(2026, 4, day, tzinfo=UTC), [("dip", 0, day), ("row", 40, 8)])
    weights, cursor = [], None
    while True:
        page = (await http.get("/api/v1/exercises/dip/history", headers=bearer(uid),
                               params={"limit": 3, **({"cursor": cursor} if cursor else {})})).json()
        weights += [s["reps"] for s in page["data"]]
        assert all(s["exercise_id"] == "dip" for s in page["data"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert weights == [7, 6, 5, 4, 3, 2, 1]


async def test_volume_buckets_follow_the_time_zone(http, database_url: str) -> None:
    uid = f"vol-{uuid.uuid4().hex[:6]}"
    # 23:30 UTC on 2 March is already 3 March in Berlin.
    late = datetime(2026, 3, 2, 23, 31, tzinfo=UTC)
    await store(database_url, uid, late, [("bench", 100, 5)])
    await store(database_url, uid, datetime(2026, 3, 10, 12, tzinfo=UTC), [("bench", 50, 10), ("row", 10, 10)])
    query = {"from": "2026-03-01", "to": "2026-03-31"}
    utc = (await http.get("/api/v1/analytics/volume", headers=bearer(uid), params=query)).json()
    assert [(b["start"], b["total_volume_kg"]) for b in utc["data"]] == [("2026-03-02", 500), ("2026-03-10", 600)]
    berlin = (await http.get("/api/v1/analytics/volume", headers=bearer(uid),
                             params={**query, "tz": "Europe/Berlin"})).json()
    assert [b["start"] for b in berlin["data"]] == ["2026-03-03", "2026-03-10"]
    weeks = (await http.get("/api/v1/analytics/volume", headers=bearer(uid),
                            params={**query, "bucket": "week"})).json()
    assert [(b["start"], b["set_count"], b["workout_count"]) for b in weeks["data"]] == [
        ("2026-03-02", 1, 1), ("2026-03-09", 2, 1)]
    month = (await http.get("/api/v1/analytics/volume", headers=bearer(uid),
                            params={**query, "bucket": "month"})).json()
    assert month["data"] == [{"start": "2026-03-01", "total_volume_kg": 1100, "set_count": 3, "workout_count": 2}]


@pytest.mark.parametrize(("path", "query", "name"), [
    ("/api/v1/workouts", {"limit": "0"}, "limit"),
    ("/api/v1/workouts", {"limit": "many"}, "limit"),
    ("/api/v1/workouts", {"cursor": "garbage"}, "cursor"),
    ("/api/v1/exercises/bench/history", {"cursor": "WzEsMl0"}, "cursor"),
    # 500s a hostile client found: a digit isdigit takes and int does not, ids that are not text
    ("/api/v1/workouts", {"limit": "\u00b2"}, "limit"),
    ("/api/v1/workouts", {"cursor": "WzAsMTIzXQ"}, "cursor"),
    ("/api/v1/exercises/bench/history", {"cursor": "WzAsWzFdLFsyXV0"}, "cursor"),
    # a 500 too: JSON nested past the recursion limit, and a cursor no page ever gave
    ("/api/v1/workouts", {"cursor": base64.urlsafe_b64encode(b"[" * 30000).decode()}, "cursor"),
    ("/api/v1/exercises/bench/history", {"cursor": "A" * 257}, "cursor"),
    ("/api/v1/analytics/volume", {"tz": "Mars/Olympus"}, "tz"),
    ("/api/v1/analytics/volume", {"bucket": "year"}, "bucket"),
    ("/api/v1/analytics/volume", {"from": "2026-02-30"}, "from"),
    ("/api/v1/analytics/volume", {"from": "2026-03-01", "to": "2026-02-01"}, "from"),
    ("/api/v1/analytics/volume", {"to": "2026-03-01T10:00:00"}, "to"),
    # Each of these was a 500: a date past what date arithmetic holds, a zone Postgres does not know,
    # and a NUL Postgres cannot take.
    ("/api/v1/analytics/volume", {"from": "9999-12-01", "to": "9999-12-31"}, "to"),
    ("/api/v1/analytics/volume", {"to": "0001-01-01"}, "to"),
    ("/api/v1/analytics/volume", {"tz": "localtime"}, "tz"),
    ("/api/v1/exercises/%00/records", {}, "exercise_id"),
    ("/api/v1/exercises/%00/history", {}, "exercise_id"),
])
async def test_a_bad_parameter_is_named(http, path: str, query: dict, name: str) -> None:
    body = problem_of(await http.get(path, params=query, headers=bearer("v")), 400, "invalid_payload")
    assert [p["name"] for p in body["invalid_params"]] == [name]


async def test_active_workout_comes_from_the_live_state(http, server: str) -> None:
    uid = f"live-{uuid.uuid4().hex[:6]}"
    problem_of(await http.get("/api/v1/workouts/active", headers=bearer(uid)), 404, "not_found")
    device = await Device().connect(server, {"token": token(uid), "device_id": "phone"})
    try:
        await device.wait_for("session:ready")
        wid = new_id()
        await ok(device, "workout:start", {"workout_id": wid, "name": "Live"})
        body = (await http.get("/api/v1/workouts/active", headers=bearer(uid))).json()
        assert body["workout_id"] == wid and body["name"] == "Live" and body["status"] == "live"
    finally:
        await device.close()


async def test_unknown_routes_and_methods_are_problems(http) -> None:
    problem_of(await http.get("/api/v1/nothing-here"), 404, "not_found")
    assert (await http.post("/api/v1/workouts")).status_code == 405


async def test_schemathesis_finds_no_server_error_and_no_schema_break(server: str, database_url: str) -> None:
    uid = f"fuzz-{uuid.uuid4().hex[:6]}"
    for day in range(1, 4):
        await store(database_url, uid, datetime(2026, 5, day, tzinfo=UTC), [("bench", 80, 5), ("row", 60, 8)])
    st = [sys.executable, "-m", "schemathesis.cli", "run", f"{server}/openapi.json",
          "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance,"
                      "status_code_conformance",
          "--header", f"Authorization: Bearer {token(uid)}", "--max-examples", "25", "--seed", "1",
          "--phases", "examples,coverage,fuzzing"]
    result = await asyncio.to_thread(subprocess.run, st, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert generated and int(generated.group(1)) > 100 and generated.group(1) == generated.group(2), result.stdout
