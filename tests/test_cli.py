"""The `liveset` command's token and migrate subcommands, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg

from liveset.cli import _banner, dev_environment
from realtime.core.auth import TokenVerifier
from realtime.core.settings import from_env

from .servers import ROOT, TEST_SECRET


def liveset(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("JWT_SECRET", "DATABASE_URL", "REDIS_URL")}
    return subprocess.run(
        [sys.executable, "-m", "liveset", *args], env={**clean, **env}, cwd=ROOT,
        capture_output=True, text=True, timeout=60,
    )


def test_token_mints_a_token_the_server_accepts() -> None:
    result = liveset("token", "--user", "alice", "--ttl", "90m", JWT_SECRET=TEST_SECRET)
    assert result.returncode == 0, result.stderr
    settings = from_env({"REDIS_URL": "redis://x", "DATABASE_URL": "postgresql://x", "JWT_SECRET": TEST_SECRET})
    claims = TokenVerifier(settings).verify(result.stdout.strip())
    assert claims.user_id == "alice"


def test_the_dev_banner_token_carries_the_configured_audience_and_issuer(capsys) -> None:
    # The banner's token had no aud/iss, so a server configured with them refused its own token.
    env = {"REDIS_URL": "redis://x", "DATABASE_URL": "postgresql://x", "JWT_SECRET": TEST_SECRET,
           "JWT_AUDIENCE": "liveset-app", "JWT_ISSUER": "https://auth.example"}
    _banner(from_env(env))
    printed = next(line for line in capsys.readouterr().out.splitlines() if line.count(".") == 2)
    assert TokenVerifier(from_env(env)).verify(printed.strip()).user_id == "demo"


def test_token_rejects_a_bad_ttl() -> None:
    result = liveset("token", "--user", "alice", "--ttl", "soon", JWT_SECRET=TEST_SECRET)
    assert result.returncode == 2
    assert "--ttl" in result.stderr


def test_migrate_requires_database_url() -> None:
    result = liveset("migrate")
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr


async def test_migrate_applies_to_database_url(template_database: str) -> None:
    base, _, _ = template_database.rpartition("/")
    admin = await asyncpg.connect(template_database)
    await admin.execute('DROP DATABASE IF EXISTS "cli_migrate"')
    await admin.execute('CREATE DATABASE "cli_migrate"')
    try:
        first = liveset("migrate", DATABASE_URL=f"{base}/cli_migrate")
        assert first.returncode == 0, first.stderr
        assert "0001_workouts.sql" in first.stdout
        again = liveset("migrate", DATABASE_URL=f"{base}/cli_migrate")
        assert "none pending" in again.stdout
    finally:
        await admin.execute('DROP DATABASE "cli_migrate" WITH (FORCE)')
        await admin.close()


def test_dev_names_the_servers_it_was_given_without_their_passwords(tmp_path, capsys) -> None:
    env = {"REDIS_URL": "redis://:hunter2@127.0.0.1:6390/0", "DATABASE_URL": "postgresql://app:pw@127.0.0.1/db"}
    with dev_environment(env, tmp_path) as filled:
        assert filled["REDIS_URL"] == env["REDIS_URL"]  # nothing embedded was started for them
    printed = capsys.readouterr().out
    assert "using REDIS_URL     redis://:***@127.0.0.1:6390/0" in printed
    assert "using DATABASE_URL  postgresql://app:***@127.0.0.1/db" in printed
    assert "hunter2" not in printed and ":pw@" not in printed
