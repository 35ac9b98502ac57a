"""Production configuration comes only from the environment and fails fast, by name."""

from __future__ import annotations

import os
import subprocess

import pytest

from realtime.core.settings import SettingsError, from_env

from .servers import ROOT, procfile_line, with_venv_path

GOOD = {
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "DATABASE_URL": "postgresql://u@127.0.0.1:1/db",
    "JWT_SECRET": "s" * 32,
}


def test_a_complete_environment_is_read() -> None:
    settings = from_env({**GOOD, "PORT": "9000", "CORS_ORIGINS": "https://a.example, https://b.example",
                         "LOG_LEVEL": "debug", "JWT_AUDIENCE": "app", "PING_INTERVAL_S": "10"})
    assert settings.port == 9000
    assert (settings.ping_interval_s, settings.ping_timeout_s) == (10, 20)
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.log_level == "DEBUG"
    assert settings.jwt_algorithm == "HS256"
    assert settings.jwt_audience == "app"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"REDIS_URL": ""}, "REDIS_URL"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"JWT_SECRET": ""}, "JWT_SECRET"),
        ({"JWT_SECRET": "short"}, "JWT_SECRET"),
        ({"JWT_ALGORITHM": "HS512"}, "JWT_ALGORITHM"),
        ({"JWT_ALGORITHM": "RS256"}, "JWT_PUBLIC_KEY"),
        ({"JWT_ALGORITHM": "ES256", "JWT_PUBLIC_KEY": "not a pem"}, "JWT_PUBLIC_KEY"),
        ({"PORT": "eighty"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL"),
        ({"PING_TIMEOUT_S": "0"}, "PING_TIMEOUT_S"),
    ],
)
def test_missing_or_malformed_settings_are_named(change: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        from_env({**GOOD, **change})


def test_the_web_process_stops_at_start_naming_the_variable() -> None:
    env = with_venv_path({"PATH": os.environ["PATH"], "PORT": "0", **GOOD, "JWT_SECRET": ""})
    result = subprocess.run(
        ["bash", "-c", "exec " + procfile_line("web")], env=env, cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    assert "JWT_SECRET is required" in result.stderr
    assert "Traceback" not in result.stderr
