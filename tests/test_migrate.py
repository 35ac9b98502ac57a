"""Migrations from zero, in order, once, under a lock, and tamper-evident."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from db.migrate import MigrationError, discover, migrate, migrate_url


@pytest.fixture
async def empty_database(template_database: str) -> AsyncIterator[str]:
    name = f"m_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(template_database)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = template_database.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def test_from_zero_applies_every_migration_once(empty_database: str) -> None:
    names = [name for _, name, _ in discover()]
    assert names and names[0].startswith("0001_")
    assert await migrate_url(empty_database) == names
    assert await migrate_url(empty_database) == []
    conn = await asyncpg.connect(empty_database)
    try:
        recorded = [r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations ORDER BY version")]
        assert recorded == names
        tables = {r["table_name"] for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
        assert {"workouts", "workout_sets", "personal_records", "schema_migrations"} <= tables
    finally:
        await conn.close()


async def test_processes_starting_at_once_apply_each_migration_once(empty_database: str) -> None:
    results = await asyncio.gather(*(migrate_url(empty_database) for _ in range(4)))
    applied = [name for result in results for name in result]
    assert sorted(applied) == [name for _, name, _ in discover()]


async def test_a_failing_migration_rolls_back_and_stops(empty_database: str, tmp_path: Path) -> None:
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good (id int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (id int); SELECT no_such_function();")
    (tmp_path / "0003_later.sql").write_text("CREATE TABLE later (id int);")
    conn = await asyncpg.connect(empty_database)
    try:
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await migrate(conn, tmp_path)
        names = {r["table_name"] for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
        assert "good" in names and "half" not in names and "later" not in names
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 1
    finally:
        await conn.close()


async def test_an_edited_applied_migration_is_refused(empty_database: str, tmp_path: Path) -> None:
    migration = tmp_path / "0001_first.sql"
    migration.write_text("CREATE TABLE first (id int);")
    conn = await asyncpg.connect(empty_database)
    try:
        assert await migrate(conn, tmp_path) == ["0001_first.sql"]
        migration.write_text("CREATE TABLE first (id bigint);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, tmp_path)
    finally:
        await conn.close()


def test_badly_named_migration_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "1_first.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_lowercase_name.sql"):
        discover(tmp_path)


async def test_a_one_item_plan_stored_as_an_object_becomes_a_list(empty_database: str, tmp_path: Path) -> None:
    before = [(v, n, sql) for v, n, sql in discover() if v < 3]
    for _, name, sql in before:
        (tmp_path / name).write_text(sql)
    await migrate_url(empty_database, tmp_path)
    conn = await asyncpg.connect(empty_database)
    try:
        insert = ("INSERT INTO workouts (user_id, id, name, started_at, completed_at, duration_s, total_volume_kg,"
                  " set_count, exercise_count, plan) VALUES ('u', $1, 'w', now(), now(), 0, 0, 0, 0, $2::jsonb)")
        one, listed, none = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await conn.execute(insert, one, '{"exercise_id": "squat"}')
        await conn.execute(insert, listed, '[{"exercise_id": "row"}]')
        await conn.execute(insert, none, None)
        await migrate_url(empty_database)
        plans = {r["id"]: r["plan"] for r in await conn.fetch("SELECT id, plan::text FROM workouts")}
        assert plans == {one: '[{"exercise_id": "squat"}]', listed: '[{"exercise_id": "row"}]', none: None}
    finally:
        await conn.close()
