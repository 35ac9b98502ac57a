"""Handshake authentication with a real python-socketio client over websocket only."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import jwt
import pytest
import socketio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .clients import Device, token
from .conftest import make_settings
from .servers import TEST_SECRET, in_process


def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


async def refused(url: str, auth: object) -> dict:
    device = Device()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await device.connect(url, auth)
    assert device.connect_error is not None, "no connect_error was received"
    data = device.connect_error["data"]
    assert data["code"] == "unauthorized"
    assert isinstance(data["message"], str) and data["message"]
    return data


async def test_valid_token_gets_session_ready(server: str) -> None:
    uid = user()
    before = time.time() * 1000
    device = await Device().connect(server, {"token": token(uid), "device_id": "phone"})
    try:
        (ready,) = await device.wait_for("session:ready")
        assert ready["user_id"] == uid
        assert ready["device_id"] == "phone"
        assert ready["active_workout"] is None
        assert before - 1000 <= ready["server_time"] <= time.time() * 1000 + 1000
        assert device.sio.transport() == "websocket"
    finally:
        await device.close()


@pytest.mark.parametrize(
    ("case", "auth"),
    [
        ("no auth", None),
        ("no token", {"device_id": "phone"}),
        ("empty token", {"token": "", "device_id": "phone"}),
        ("garbage token", {"token": "not-a-jwt", "device_id": "phone"}),
        ("expired", {"token": token("u1", ttl_s=-10), "device_id": "phone"}),
        ("wrong key", {"token": token("u1", secret="another-secret-" + "y" * 64), "device_id": "phone"}),
        ("alg none", {"token": jwt.encode({"sub": "u1", "exp": int(time.time()) + 60}, None, algorithm="none"),
                      "device_id": "phone"}),
        ("wrong algorithm", {"token": jwt.encode({"sub": "u1", "exp": int(time.time()) + 60}, TEST_SECRET,
                                                 algorithm="HS512"), "device_id": "phone"}),
        ("no exp", {"token": jwt.encode({"sub": "u1"}, TEST_SECRET, algorithm="HS256"), "device_id": "phone"}),
        ("no sub", {"token": jwt.encode({"exp": int(time.time()) + 60}, TEST_SECRET, algorithm="HS256"),
                    "device_id": "phone"}),
        ("no device_id", {"token": token("u1")}),
        ("empty device_id", {"token": token("u1"), "device_id": ""}),
        ("long device_id", {"token": token("u1"), "device_id": "d" * 65}),
        ("NUL in device_id", {"token": token("u1"), "device_id": "a\u0000b"}),
        ("NUL in sub", {"token": token("u\u00001"), "device_id": "phone"}),
        ("half an emoji in sub", {"token": token("a\ud83db"), "device_id": "phone"}),
        # exp: an integer NumericDate before the year 3000, nothing PyJWT would also take
        *((f"exp {exp!r}", {"token": jwt.encode({"sub": "u1", "exp": exp}, TEST_SECRET, algorithm="HS256"),
                            "device_id": "phone"})
          for exp in (str(int(time.time()) + 60), time.time() + 60.5, 10**20, 1e308, True)),
    ],
)
async def test_refused_handshakes(server: str, case: str, auth: object) -> None:
    await refused(server, auth)


@pytest.mark.parametrize("garbage", ["not-a-jwt", "abc.def.ghi", "eyJhbGciOiJIUzI1NiJ9.%%%.x"])
async def test_a_token_that_is_no_jwt_is_named_so_in_plain_words(server: str, garbage: str) -> None:
    # PyJWT's own words named its decoder: "Invalid header string: 'utf-8' codec can't decode ...".
    data = await refused(server, {"token": garbage, "device_id": "phone"})
    assert data["message"] == "invalid token: not a JWT (header.payload.signature, each base64url JSON)"


async def test_expired_message_says_expired(server: str) -> None:
    data = await refused(server, {"token": token("u1", ttl_s=-10), "device_id": "phone"})
    assert "expired" in data["message"]


@pytest.mark.parametrize("exp", [True, 1.5, "1"])
async def test_an_exp_that_is_no_numericdate_is_named_so_not_expired(server: str, exp: object) -> None:
    """PyJWT reads `exp: true` as 1, and 1.5 or "1" as numbers: all long past, "token expired"."""
    data = await refused(server, {"token": jwt.encode({"sub": "u1", "exp": exp}, TEST_SECRET, algorithm="HS256"),
                                  "device_id": "phone"})
    assert "exp must be an integer NumericDate" in data["message"], data


async def test_audience_and_issuer_are_checked_when_configured(redis_url: str, database_url: str) -> None:
    settings = make_settings(redis_url, database_url, jwt_audience="liveset-app", jwt_issuer="https://auth.example")
    async with in_process(settings) as url:
        good = token("u1", audience="liveset-app", issuer="https://auth.example")
        device = await Device().connect(url, {"token": good, "device_id": "phone"})
        await device.wait_for("session:ready")
        await device.close()
        await refused(url, {"token": token("u1", audience="other-app", issuer="https://auth.example"),
                            "device_id": "phone"})
        await refused(url, {"token": token("u1", issuer="https://auth.example"), "device_id": "phone"})
        await refused(url, {"token": token("u1", audience="liveset-app", issuer="https://evil.example"),
                            "device_id": "phone"})


@pytest.mark.parametrize(("algorithm", "new_key"), [
    ("RS256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    ("ES256", lambda: ec.generate_private_key(ec.SECP256R1())),
])
async def test_a_public_key_algorithm_takes_its_key_only(redis_url: str, database_url: str, algorithm: str,
                                                         new_key: Any) -> None:
    private, stranger = new_key(), new_key()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    settings = make_settings(redis_url, database_url, jwt_algorithm=algorithm, jwt_key=public_pem)
    claims = {"sub": "u1", "exp": int(time.time()) + 60}
    async with in_process(settings) as url:
        device = await Device().connect(url, {"token": jwt.encode(claims, private, algorithm=algorithm),
                                              "device_id": "watch"})
        (ready,) = await device.wait_for("session:ready")
        assert ready["user_id"] == "u1"
        await device.close()
        await refused(url, {"token": jwt.encode(claims, stranger, algorithm=algorithm), "device_id": "watch"})
        # The classic algorithm-confusion forgery: HMAC keyed with the public key.
        await refused(url, {"token": _hs256_signed_with(claims, public_pem), "device_id": "watch"})
        await refused(url, {"token": token("u1"), "device_id": "watch"})  # HS256 with the test secret


def _hs256_signed_with(claims: dict, key: str) -> str:
    # Built by hand: PyJWT itself refuses to use a PEM key as an HMAC secret.
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode())
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


async def test_token_expiry_sends_session_expired_then_disconnects(server: str) -> None:
    device = await Device().connect(server, {"token": token(user(), ttl_s=2), "device_id": "phone"})
    await device.wait_for("session:ready")
    (expired,) = await device.wait_for("session:expired", timeout=6)
    assert expired == {"reason": "token_expired"}
    for _ in range(50):
        if not device.sio.connected:
            break
        await asyncio.sleep(0.1)
    assert not device.sio.connected


async def test_every_connection_gets_session_expired_whenever_its_timer_fires(spawn) -> None:
    # uvloop's timers (the Procfile's loop) count from the time its loop turn began, so one set
    # in a busy turn fires early by the wall clock: the expiry must then wait again, not give up.
    # Twenty devices connecting at once make busy turns.
    server = (await spawn()).url
    devices = await asyncio.gather(*(
        Device().connect(server, {"token": token(user(), ttl_s=2), "device_id": "phone"}) for _ in range(20)))
    try:
        await asyncio.gather(*(d.wait_for("session:ready") for d in devices))
        await asyncio.gather(*(d.wait_for("session:expired", timeout=6) for d in devices))
    finally:
        await asyncio.gather(*(d.close() for d in devices))


async def test_auth_refresh_extends_the_connection(server: str) -> None:
    uid = user()
    device = await Device().connect(server, {"token": token(uid, ttl_s=2), "device_id": "phone"})
    try:
        await device.wait_for("session:ready")
        ack = await device.emit("auth:refresh", {"token": token(uid, ttl_s=600)})
        assert ack["ok"] is True
        assert ack["data"]["expires_at"] > (time.time() + 500) * 1000
        other = await device.emit("auth:refresh", {"token": token("someone-else", ttl_s=600)})
        assert other == {"ok": False, "error": {"code": "forbidden", "message": "the new token is for another user"}}
        bad = await device.emit("auth:refresh", {"token": "junk"})
        assert bad["ok"] is False and bad["error"]["code"] == "unauthorized"
        for exp in (1e308, 10**20, str(int(time.time()) + 600)):  # no timer waits that long; not a NumericDate
            odd = jwt.encode({"sub": uid, "exp": exp}, TEST_SECRET, algorithm="HS256")
            refused = await device.emit("auth:refresh", {"token": odd})
            assert refused["ok"] is False and refused["error"]["code"] == "unauthorized", refused
        await asyncio.sleep(3)
        assert device.sio.connected
        assert not [e for e, _ in device.events if e == "session:expired"]
    finally:
        await device.close()
