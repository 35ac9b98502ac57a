"""Bad input gets a clear error ack, changes nothing, and never costs the connection."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime.core import protocol

from .clients import Device, error, ok, token
from .conftest import make_settings
from .servers import in_process

CODES = {"invalid_payload", "unauthorized", "forbidden", "not_found", "conflict", "rate_limited", "too_large",
         "unavailable", "internal"}
EVENTS = sorted(protocol.CLIENT_EVENTS) + ["room:nonsense", "no:such", ""]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
async def fuzz_server(redis_url: str, database_url: str) -> AsyncIterator[str]:
    # No rate limit here: the fuzzer sends as fast as it can, and that is not what it tests.
    async with in_process(make_settings(redis_url, database_url, rate_per_s=1e6, rate_burst=1e6)) as url:
        yield url


@pytest.fixture(scope="module")
async def fuzzed(fuzz_server: str) -> AsyncIterator[tuple[Device, str, str]]:
    """A device with a live workout holding one set: the state that must not change."""
    uid = f"fuzz-{uuid.uuid4().hex[:8]}"
    device = await Device().connect(fuzz_server, {"token": token(uid), "device_id": "fuzzer"})
    await device.wait_for("session:ready")
    wid, sid = str(uuid.uuid4()), str(uuid.uuid4())
    await ok(device, "workout:start", {"workout_id": wid})
    await ok(device, "set:complete", {"workout_id": wid, "set_id": sid, "exercise_id": "bench", "reps": 5})
    yield device, wid, sid
    await device.close()


async def snapshot(device: Device, wid: str) -> Any:
    reply = await ok(device, "workout:sync", {"workout_id": wid, "since_seq": 0})
    return reply["events"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=st.sampled_from(EVENTS), payload=json_values)
async def test_arbitrary_json_gets_only_error_acks(fuzzed, event: str, payload: Any) -> None:
    device, wid, _ = fuzzed
    before = await snapshot(device, wid)
    ack = await device.emit(event, payload)
    if ack["ok"]:
        # Only payloads that are valid by chance may succeed, and they change nothing here.
        assert event in ("time:sync", "workout:sync", "room:create"), (event, payload, ack)
    else:
        assert set(ack) == {"ok", "error"} and ack["error"]["code"] in CODES
        assert isinstance(ack["error"]["message"], str) and ack["error"]["message"]
        assert ack["error"]["code"] != "internal", (event, payload, ack)
    assert await snapshot(device, wid) == before
    assert device.sio.connected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
async def test_wrong_fields_on_real_events_name_the_field(fuzzed, data: st.DataObject) -> None:
    device, wid, sid = fuzzed
    valid = {
        "set:complete": {"workout_id": wid, "set_id": str(uuid.uuid4()), "exercise_id": "bench", "reps": 5},
        "set:update": {"workout_id": wid, "set_id": sid, "reps": 6},
        "rest:start": {"workout_id": wid, "duration_s": 60},
        "workout:sync": {"workout_id": wid, "since_seq": 0},
    }
    event = data.draw(st.sampled_from(sorted(valid)))
    payload = dict(valid[event])
    name = data.draw(st.sampled_from(sorted(payload)))
    payload[name] = data.draw(st.sampled_from(["x" * 3, -1, 10**12, None, [], {}, "Ω" * 100, 1.25]))
    before = await snapshot(device, wid)
    ack = await device.emit(event, payload)
    if not ack["ok"]:
        assert ack["error"]["code"] in ("invalid_payload", "not_found"), ack
        if ack["error"]["code"] == "invalid_payload":
            assert ack["error"]["details"]["field"] == name, ack
        assert await snapshot(device, wid) == before


async def test_unknown_and_missing_fields_are_named(fuzzed) -> None:
    device, wid, _ = fuzzed
    err = await error(device, "rest:start", {"workout_id": wid, "duration_s": 60, "durationS": 60})
    assert err["code"] == "invalid_payload" and "durationS" in err["message"]
    assert err["details"] == {"field": "durationS"}
    err = await error(device, "rest:start", {"workout_id": wid})
    assert err["code"] == "invalid_payload" and err["details"] == {"field": "duration_s"}
    err = await error(device, "workout:start", {"workout_id": str(uuid.uuid4()), "plan": [{"exercise": "row"}]})
    assert err["details"] == {"field": "plan[0].exercise"}


@pytest.mark.parametrize(("event", "field"), [
    ("set:complete", "notes"), ("set:complete", "exercise_id"), ("set:update", "notes"),
    ("workout:complete", "notes"), ("room:create", "name"),
])
async def test_text_with_a_nul_is_refused_and_changes_nothing(fuzzed, event: str, field: str) -> None:
    # Postgres cannot store a NUL in text: taken, it would block the workout's completion for good.
    device, wid, sid = fuzzed
    payload: dict[str, Any] = {
        "set:complete": {"workout_id": wid, "set_id": str(uuid.uuid4()), "exercise_id": "bench", "reps": 5},
        "set:update": {"workout_id": wid, "set_id": sid},
        "workout:complete": {"workout_id": wid},
        "room:create": {"name": "room"},
    }[event]
    before = await snapshot(device, wid)
    err = await error(device, event, {**payload, field: "a\u0000b"})
    assert err["code"] == "invalid_payload" and err["details"] == {"field": field} and "NUL" in err["message"]
    assert await snapshot(device, wid) == before


async def test_huge_payloads_are_too_large_and_changes_nothing(fuzzed) -> None:
    device, wid, _ = fuzzed
    before = await snapshot(device, wid)
    err = await error(device, "set:complete", {"workout_id": wid, "set_id": str(uuid.uuid4()),
                                               "exercise_id": "bench", "notes": "n" * 20_000})
    assert err["code"] == "too_large" and err["details"] == {"limit": 16384}
    assert await snapshot(device, wid) == before
    assert (await ok(device, "time:sync", {}))["server_time"] > 0


@pytest.mark.parametrize("size", [70_000, 100_000, 900_000])
async def test_a_big_event_is_too_large_and_keeps_its_connection(fuzzed, size: int) -> None:
    # Up to the transport's 1 MB (socket.io's own default), an app that sends a long note
    # gets an error it can show, not a dropped link.
    device, wid, _ = fuzzed
    before = await snapshot(device, wid)
    err = await error(device, "set:complete", {"workout_id": wid, "set_id": str(uuid.uuid4()),
                                               "exercise_id": "bench", "notes": "n" * size})
    assert err["code"] == "too_large"
    assert device.sio.connected and await snapshot(device, wid) == before


async def test_a_message_beyond_the_transport_limit_only_costs_that_connection(fuzzed, fuzz_server: str) -> None:
    device, wid, _ = fuzzed
    other = await Device().connect(fuzz_server, {"token": token("big-sender"), "device_id": "x"})
    await other.wait_for("session:ready")
    await other.sio.emit("set:complete", {"blob": "b" * 1_100_000})
    for _ in range(50):
        if not other.sio.connected:
            break
        await other.sio.sleep(0.1)
    assert not other.sio.connected
    assert (await ok(device, "time:sync", {}))["server_time"] > 0


async def test_events_beyond_the_rate_are_rate_limited(redis_url: str, database_url: str) -> None:
    async with in_process(make_settings(redis_url, database_url, rate_per_s=5, rate_burst=10)) as url:
        device = await Device().connect(url, {"token": token("fast"), "device_id": "phone"})
        try:
            await device.wait_for("session:ready")
            acks = [await device.emit("time:sync", {}) for _ in range(15)]
            codes = [a["error"]["code"] if not a["ok"] else "ok" for a in acks]
            assert codes[:10] == ["ok"] * 10 and "rate_limited" in codes[10:]
            limited = next(a for a in acks if not a["ok"])
            assert limited["error"]["details"] == {"retry_after_ms": 200}
            await device.sio.sleep(0.5)
            assert (await device.emit("time:sync", {}))["ok"] is True
        finally:
            await device.close()
