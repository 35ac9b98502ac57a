"""The servers under test, started the way `liveset dev` starts them, pinned to given cores.

liveset: N processes from the Procfile's `web:` line, sharing one embedded Valkey
and PostgreSQL. The Node reference peer (loadtest/peers/node): copied to a
temporary folder (its node_modules stay out of the repository), `npm install`ed there, run with the
same Redis and JWT secret.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from liveset.dev.embedded import EmbeddedPostgres, EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "loadtest" / "peers"
NODE_PEER, PEER_LUA = PEERS / "node", PEERS / "lua"
SECRET = "loadtest-secret-" + "z" * 48


def _procfile_web() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.split(":", 1)[1].strip()
    raise LookupError("Procfile has no web: line")


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see {log}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not healthy within {timeout}s; see {log}")


def _pinned(cmd: list[str], cpus: list[int] | None) -> list[str]:
    return ["taskset", "-c", ",".join(map(str, cpus)), *cmd] if cpus else cmd


class Stack:
    """Valkey + Postgres (+ the servers started on them); everything stops on exit."""

    def __init__(self, cpus: list[int] | None, backend_cpus: list[int] | None, durable: bool = False,
                 restartable: bool = False) -> None:
        """`durable`: Postgres syncs to disk. `restartable`: Valkey keeps an append-only file,
        so that it can be stopped and started again mid-run (--chaos) with nothing lost."""
        self.cpus = cpus
        self.durable = durable
        self.restartable = restartable
        self.backend_cpus = backend_cpus
        self.dir = Path(tempfile.mkdtemp(prefix="liveset-load-"))
        self.dir.chmod(0o755)
        self.procs: list[subprocess.Popen[bytes]] = []
        self._spawned: dict[int, tuple[list[str], Path, dict[str, str], Path]] = {}  # pid -> how to start it again
        self._exit = contextlib.ExitStack()

    def __enter__(self) -> Stack:
        self.redis = self._exit.enter_context(EmbeddedRedis(self.dir / "valkey", persist=self.restartable).start())
        self.postgres = self._exit.enter_context(EmbeddedPostgres(self.dir / "postgres", durable=self.durable).start())
        self.database_url = self.postgres.create_database("liveset")
        self._pin_backends()
        subprocess.run([sys.executable, "-m", "liveset", "migrate"], check=True, cwd=ROOT,
                       env={**os.environ, "DATABASE_URL": self.database_url}, capture_output=True)
        return self

    def _pin_backends(self) -> None:
        if self.backend_cpus:
            for server in (self.redis, self.postgres):
                assert server.proc is not None
                os.sched_setaffinity(server.proc.pid, self.backend_cpus)

    def restart_backend(self, which: str, down_s: float, crash: bool = False) -> None:
        """Stop Valkey ("redis") or Postgres ("postgres") the way an operator does (SIGTERM:
        Valkey writes its append-only file; SIGINT: Postgres' fast shutdown) or, with `crash`,
        with SIGKILL; leave it down for `down_s`, and start it again on the same port and data."""
        server = self.redis if which == "redis" else self.postgres
        if crash:
            server.kill()
        else:
            server.stop()
        time.sleep(down_s)
        server.start()
        self._pin_backends()

    @property
    def redis_pid(self) -> int:
        assert self.redis.proc is not None
        return self.redis.proc.pid

    def liveset(self, processes: int) -> list[tuple[str, int]]:
        """Start liveset web processes; returns (url, pid) of each."""
        env = {"DATABASE_URL": self.database_url, "LOG_LEVEL": "WARNING", "RATE_LIMIT_PER_S": "1000",
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        return self._start(processes, "liveset", ["bash", "-c", "exec " + _procfile_web()], ROOT, env)

    def peer(self, name: str) -> Callable[[int], list[tuple[str, int]]]:
        return {"node": self.node_peer, "pysio": self.pysio_peer}[name]

    def pysio_peer(self, processes: int) -> list[tuple[str, int]]:
        """Start the plain python-socketio peer's processes (AsyncRedisManager joins them)."""
        return self._start(processes, "pysio-peer", [sys.executable, "-m", "loadtest.peers.pysio"], ROOT)

    def node_peer(self, processes: int) -> list[tuple[str, int]]:
        """Start the Node peer's processes (its Redis adapter joins them); returns (url, pid) of each."""
        peer = self.dir / "node-peer"
        if not peer.exists():  # once per stack: later rounds (--rounds) start it again
            shutil.copytree(NODE_PEER, peer)
            shutil.copytree(PEER_LUA, self.dir / "lua")  # beside it, where server.js looks
            subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=peer, check=True)
        return self._start(processes, "node-peer", ["node", "server.js"], peer)

    def _start(self, processes: int, name: str, command: list[str], cwd: Path,
               extra_env: dict[str, str] | None = None) -> list[tuple[str, int]]:
        """Start `processes` of a server on free ports, on our Redis with our JWT secret; (url, pid) of each."""
        started = []
        for _ in range(processes):
            port = free_port()
            log = self.dir / f"{name}-{port}.log"
            env = {**os.environ, "PORT": str(port), "REDIS_URL": self.redis.url, "JWT_SECRET": SECRET,
                   **(extra_env or {})}
            started.append(self._spawn(command, cwd, env, log))
        return started

    def _spawn(self, command: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[str, int]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(_pinned(command, self.cpus), cwd=cwd, env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self._spawned[proc.pid] = (command, cwd, env, log)
        url = f"http://127.0.0.1:{env['PORT']}"
        _wait_healthy(url, proc, log)
        return url, proc.pid

    def kill_and_restart(self, pid: int, down_s: float) -> int:
        """kill -9 a server process, and after `down_s` start it again on the same port (its
        clients have failed over meanwhile); returns the new pid."""
        proc = next(p for p in self.procs if p.pid == pid)
        proc.kill()
        proc.wait()
        self.procs.remove(proc)
        time.sleep(down_s)
        return self._spawn(*self._spawned.pop(pid))[1]

    def stop_servers(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()
        self.redis_flush()

    def redis_flush(self) -> None:
        import redis

        redis.Redis.from_url(self.redis.url).flushall()

    def __exit__(self, *exc: object) -> None:
        self.stop_servers()
        self._exit.close()
        if not os.environ.get("LOADTEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
