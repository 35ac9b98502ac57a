"""The README's two commands, run in a clean copy of the repository as a new user would.

The copy has no .venv and no .liveset: `run.py` must create the environment,
start its own Valkey and PostgreSQL, and stop everything on Ctrl-C. The
machine's own Redis and Postgres are hidden from it (no *_URL variables) and
must not be what it uses.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from liveset.dev.embedded import free_port

from .clients import Device
from .servers import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(os.environ.get("LIVESET_INSIDE_FRESH_CLONE")), reason="already inside the clone"),
]
HIDDEN = ("REDIS_URL", "DATABASE_URL", "TEST_REDIS_URL", "TEST_DATABASE_URL", "JWT_SECRET", "VIRTUAL_ENV")


def readme_command(kind: str) -> list[str]:
    """The command the README gives for `kind` ("server" or "tests"), as words."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(rf"^\s*(python3 run\.py {kind})\s*$", readme, re.MULTILINE)
    assert match, f"README.md does not give the {kind} command"
    return match.group(1).split()


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    # In a folder only its owner may enter, as /root or one made by mktemp -d: as root, the
    # embedded PostgreSQL runs as `nobody`, which must still reach the venv's binaries.
    private = tmp_path_factory.mktemp("clone")
    private.chmod(0o700)
    target = private / "liveset"
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    yield target
    shutil.rmtree(target, ignore_errors=True)


def run_readme_example(clone: Path, port: int, token: str) -> dict:
    """The README's Python client example, as written but for the port and the token; the
    workout it stored, as the last line it prints."""
    readme = (clone / "README.md").read_text()
    code = re.search(r"Connect with that token.*?```python\n(.*?)```", readme, re.DOTALL).group(1)  # type: ignore[union-attr]
    code = code.replace('"<token>"', repr(token)).replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    result = subprocess.run([str(clone / ".venv" / "bin" / "python"), "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error:" not in result.stdout, result.stdout
    # Each timer started and finished (the client's handlers print from their own threads, so lines may interleave).
    assert result.stdout.count("rest:timer") == 6, result.stdout
    return ast.literal_eval(result.stdout.strip().splitlines()[-1])


def user_env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in HIDDEN}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if "/.venv/" not in p)
    env["PORT"] = str(port)
    return env


def processes_under(folder: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(folder) in cmdline:
                found.append(f"{proc.name}: {cmdline}")
    return found


class Run:
    def __init__(self, clone: Path, port: int) -> None:
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            readme_command("server"), cwd=clone, env=user_env(port),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )

    def read_until(self, marker: str, timeout: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                break
            self.output.append(line)
            if marker in line:
                return "".join(self.output)
        raise AssertionError(f"no {marker!r} in the output:\n{''.join(self.output)}")

    def interrupt(self) -> str:
        self.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        out, _ = self.proc.communicate(timeout=60)
        self.output.append(out)
        return "".join(self.output)


def test_test_command_runs_in_the_clone(clone: Path) -> None:
    # The whole suite would run this test again inside the clone; one module proves the bootstrap.
    command = [*readme_command("tests"), "tests/test_health.py", "-q", "-p", "no:cacheprovider"]
    env = {**user_env(free_port()), "LIVESET_INSIDE_FRESH_CLONE": "1"}
    result = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\d+ passed", result.stdout), result.stdout
    assert processes_under(clone) == []


async def test_run_command_serves_on_embedded_servers_and_stops_clean(clone: Path) -> None:
    port = free_port()
    first = Run(clone, port)
    try:
        # The first start creates the environment and installs everything: minutes, not seconds.
        printed = first.read_until("Ctrl-C stops", timeout=600)
        redis_url = re.search(r"started Valkey\s+(\S+)", printed).group(1)  # type: ignore[union-attr]
        pg_url = re.search(r"started PostgreSQL\s+(\S+)", printed).group(1)  # type: ignore[union-attr]
        assert ":6379/" not in redis_url and ":5432/" not in pg_url
        token = re.search(r"^(eyJ\S+)$", printed, re.MULTILINE).group(1)  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}"
        assert f"liveset is running at {url}" in printed
        assert f"{url}/#token={token}" in printed  # the web app's link, signed in
        async with httpx.AsyncClient() as http:
            for _ in range(100):
                try:
                    if (await http.get(f"{url}/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            assert (await http.get(f"{url}/readyz")).json() == {"status": "ready"}
            assert "<title>liveset</title>" in (await http.get(f"{url}/")).text
        device = await Device().connect(url, {"token": token, "device_id": "readme"})
        (ready,) = await device.wait_for("session:ready")
        assert ready["user_id"] == "demo"
        await device.close()
        for _ in range(2):  # twice: a second run must not trip over the first one's workout
            history = await asyncio.to_thread(run_readme_example, clone, port, token)
            assert history["set_count"] == 3 and history["notes"] == "felt strong"
            assert [s["exercise_id"] for s in history["sets"]] == ["bench", "bench", "dips"]
            assert [item["exercise_id"] for item in history["plan"]] == ["bench", "dips"]
        redis.Redis.from_url(redis_url).set("fresh-clone-check", "kept")
    finally:
        printed = first.interrupt()
    assert first.proc.returncode == 0, printed
    assert "liveset dev: stopped" in printed
    assert processes_under(clone) == [], "Ctrl-C left processes behind"

    second = Run(clone, port)
    try:
        printed = second.read_until("Ctrl-C stops", timeout=120)
        assert "none pending" in printed  # the database outlived the restart
        redis_url = re.search(r"started Valkey\s+(\S+)", printed).group(1)  # type: ignore[union-attr]
        assert redis.Redis.from_url(redis_url).get("fresh-clone-check") == b"kept"
    finally:
        second.interrupt()
    assert processes_under(clone) == []
