"""Real liveset servers for tests: in this process under uvicorn, or as OS processes.

The OS-process form runs the Procfile's `web:` line exactly, so the tests
exercise the production entry and can `kill -9` a process mid-workout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import uvicorn

from liveset.asgi import create_app
from liveset.dev.embedded import free_port
from realtime.core.settings import Settings
from realtime.transport.http_protocol import UpgradeReleasingHttpToolsProtocol

ROOT = Path(__file__).resolve().parent.parent
TEST_SECRET = "test-secret-" + "x" * 64


def with_venv_path(env: dict[str, str]) -> dict[str, str]:
    """`env` with this interpreter's bin folder first on PATH, where the Procfile's commands live."""
    bin_dir = str(Path(sys.executable).parent)
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"}


def procfile_line(kind: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == kind:
            return command.strip()
    raise LookupError(f"Procfile has no {kind}: line")


@contextlib.asynccontextmanager
async def in_process(settings: Settings) -> AsyncIterator[str]:
    """The app under uvicorn on a free port in this event loop; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, lifespan="on",
        http=UpgradeReleasingHttpToolsProtocol,
        ws_per_message_deflate=False, ws_ping_interval=None, access_log=False, timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


class ServerProcess:
    """One `web:` process of the Procfile, with the environment a deployment would give it."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.env = with_venv_path({**os.environ, **env, "PORT": str(self.port)})
        self.log_path = log_dir / f"web-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 20) -> ServerProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["bash", "-c", "exec " + procfile_line("web")], env=self.env, cwd=ROOT,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"web process exited with {self.proc.returncode}:\n{self.log()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{self.url}/healthz", timeout=1)).status_code == 200:
                        return self
                await asyncio.sleep(0.05)
        raise TimeoutError(f"web process not healthy within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __repr__(self) -> str:
        return f"ServerProcess({shlex.quote(self.url)})"
