"""The straightforward Python server, for the load test's --compare pysio: python-socketio's
AsyncServer with its AsyncRedisManager (every emit goes to every process over one Redis channel)
on uvicorn, the live state in Redis through the same Lua as the Node peer (loadtest/peers/lua),
rest timers as in-process `call_later`. The benchmark subset of docs/protocol.md, as the Node
peer speaks it (see node/server.js); it imports nothing of liveset.

    PORT=3200 REDIS_URL=redis://127.0.0.1:6379/0 JWT_SECRET=... python -m loadtest.peers.pysio
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import redis.asyncio as redis
import socketio
import uvicorn

LUA = Path(__file__).resolve().parent / "lua"
SECRET = os.environ.get("JWT_SECRET", "")
URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

store = redis.Redis.from_url(URL, decode_responses=True)
scripts = {name: store.register_script((LUA / f"{name}.lua").read_text())
           for name in ("workout_start", "set_complete", "rest_start", "rest_finish")}
sio = socketio.AsyncServer(async_mode="asgi", client_manager=socketio.AsyncRedisManager(URL),
                           cors_allowed_origins=[], logger=False, engineio_logger=False)
sessions: dict[str, tuple[str, str]] = {}  # sid -> (user id, device id)


def ok(data: Any) -> dict[str, Any]:
    return {"ok": True, "data": data}


def fail(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@sio.event
async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
    try:
        claims = jwt.decode(str((auth or {}).get("token", "")), SECRET, algorithms=["HS256"],
                            options={"require": ["exp", "sub"]})
        device = auth["device_id"]
        assert isinstance(device, str)
    except Exception as exc:
        raise socketio.exceptions.ConnectionRefusedError("unauthorized", {"message": str(exc)}) from None
    sessions[sid] = (claims["sub"], device)
    await sio.enter_room(sid, f"user:{claims['sub']}")
    asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(sio.emit(
        "session:ready", {"user_id": claims["sub"], "device_id": device, "server_time": now_ms(),
                          "active_workout": None}, to=sid)))


@sio.event
async def disconnect(sid: str, reason: Any = None) -> None:
    sessions.pop(sid, None)


async def workout_start(uid: str, p: dict[str, Any]) -> dict[str, Any]:
    name = json.dumps(p.get("name"))
    fp = hashlib.sha1(f"{p['workout_id']}|{name}".encode()).hexdigest()
    status, value = await scripts["workout_start"](
        keys=[f"peer:user:{uid}:live", f"peer:workout:{p['workout_id']}"],
        args=[uid, p["workout_id"], name, now_ms(), fp])
    if status == "conflict":
        return fail("conflict", "another workout is live")
    workout = {"workout_id": p["workout_id"], "name": p.get("name"), "status": "live", "started_at": int(value),
               "paused_at": None, "ended_at": None, "room_id": None, "plan": p.get("plan"), "seq": 1, "sets": [],
               "stats": {"set_count": 0, "total_volume_kg": 0, "duration_s": 0, "avg_rpe": None}, "rest": None,
               "records": []}
    event = {"workout_id": p["workout_id"], "seq": 1, "workout": workout}
    if status == "ok":
        await sio.emit("workout:started", event, room=f"user:{uid}")
    return ok(event)


async def set_complete(uid: str, p: dict[str, Any]) -> dict[str, Any]:
    now = now_ms()
    the_set = {"set_id": p["set_id"], "exercise_id": p["exercise_id"], "set_type": p.get("set_type", "normal"),
               **{k: p.get(k) for k in ("weight_kg", "reps", "duration_s", "distance_m", "rpe", "notes")},
               "completed_at": p.get("completed_at") or now}
    fp = hashlib.sha1(json.dumps(p, sort_keys=True).encode()).hexdigest()  # as sent: a retry matches
    volume = (the_set["weight_kg"] or 0) * (the_set["reps"] or 0)
    key = f"peer:workout:{p['workout_id']}"
    reply = await scripts["set_complete"](keys=[key, f"{key}:sets"],
                                          args=[uid, p["set_id"], fp, volume, the_set["rpe"] or "", now])
    if reply[0] == "not_found":
        return fail("not_found", "no such workout")
    if reply[0] == "conflict":
        return fail("conflict", "this set_id was used for another set")
    seq, count, total, rpe_sum, rpe_n = (float(x) for x in reply[1].split(" "))
    event = {"workout_id": p["workout_id"], "seq": int(seq), "set": the_set, "records": [],
             "stats": {"set_count": int(count), "total_volume_kg": total, "duration_s": 0,
                       "avg_rpe": rpe_sum / rpe_n if rpe_n else None}}
    if reply[0] == "ok":
        await sio.emit("set:completed", event, room=f"user:{uid}")
    return ok(event)


async def rest_start(uid: str, p: dict[str, Any]) -> dict[str, Any]:
    started = now_ms()
    duration = float(p["duration_s"])
    ends_at = started + round(duration * 1000)
    timer_id, key = str(uuid.uuid4()), f"peer:workout:{p['workout_id']}"
    seq = await scripts["rest_start"](keys=[key], args=[uid, timer_id, started, ends_at, duration])
    if seq is None:
        return fail("not_found", "no such workout")
    timer = {"workout_id": p["workout_id"], "seq": int(seq), "status": "running", "started_at": started,
             "ends_at": ends_at, "duration_s": duration, "exercise_id": p.get("exercise_id"), "server_time": started}
    await sio.emit("rest:timer", timer, room=f"user:{uid}")

    async def finish() -> None:
        done = await scripts["rest_finish"](keys=[key], args=[timer_id])
        if done is not None:
            await sio.emit("rest:timer", {**timer, "seq": int(done), "status": "finished", "server_time": now_ms()},
                           room=f"user:{uid}")

    asyncio.get_running_loop().call_later(max(0, ends_at - now_ms()) / 1000, lambda: asyncio.ensure_future(finish()))
    return ok(timer)


HANDLERS = {"workout:start": workout_start, "set:complete": set_complete, "rest:start": rest_start}


@sio.on("*")
async def any_event(event: str, sid: str, payload: Any = None) -> dict[str, Any]:
    if event == "time:sync":
        return ok({"server_time": now_ms()})
    handler = HANDLERS.get(event)
    if handler is None:
        return fail("invalid_payload", f"unknown event {event!r}")
    if not isinstance(payload, dict) or "workout_id" not in payload:
        return fail("invalid_payload", "payload must be an object with workout_id")
    uid, _ = sessions[sid]
    return await handler(uid, payload)


async def healthz(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"status":"ok"}'})


app = socketio.ASGIApp(sio, other_asgi_app=healthz)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "3200")), loop="uvloop",
                ws_per_message_deflate=False, log_level="warning")
