"""A device that stops reading is cut off instead of growing the server's memory."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from realtime.core.keys import Keys

from .clients import Device, token
from .conftest import make_settings
from .servers import in_process


async def test_a_device_that_stops_reading_is_disconnected(redis_url: str, database_url: str) -> None:
    settings = make_settings(redis_url, database_url, max_queued_packets=20)
    uid = "stuck-reader"
    async with in_process(settings) as url:
        ws_url = url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        # A client with a tiny receive buffer that reads nothing after the handshake.
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
        stuck = await connect(ws_url, sock=raw, max_queue=1, compression=None, max_size=None)
        await stuck.recv()
        await stuck.send("40" + json.dumps({"token": token(uid), "device_id": "stuck"}))
        while not (await stuck.recv()).startswith("40"):
            pass
        healthy = await Device().connect(url, {"token": token(uid), "device_id": "phone"})
        publisher = aioredis.Redis.from_url(redis_url)
        try:
            await healthy.wait_for("session:ready")
            packet = '2["noise",{"pad":"' + "x" * 60_000 + '"}]'
            async with httpx.AsyncClient() as http:
                for _ in range(400):
                    await publisher.publish(Keys(settings.redis_prefix).user_channel(uid), packet)
                    metrics = (await http.get(f"{url}/metrics")).text
                    if "liveset_slow_consumers_total 1.0" in metrics:
                        break
                    await asyncio.sleep(0.01)
                else:
                    raise AssertionError("the stuck device was never cut off")
                for _ in range(50):
                    metrics = (await http.get(f"{url}/metrics")).text
                    if "liveset_connections 1.0" in metrics:
                        break
                    await asyncio.sleep(0.1)
                assert "liveset_connections 1.0" in metrics  # only the healthy device is left
            assert healthy.sio.connected and len(healthy.named("noise")) >= 20
        finally:
            await publisher.aclose()
            await healthy.close()
            stuck.transport.abort()  # it reads nothing: no close handshake to wait for
