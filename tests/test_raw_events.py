"""Whatever a client frames as an event, on either transport: one ack per ack id, never `internal`,
nothing changed, the connection kept, no traceback in the log (transport/socketio_server.py)."""

from __future__ import annotations

import gc
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime.transport.ws_frames import BINARY, TEXT

from .clients import Device, ok, token
from .conftest import make_settings
from .servers import in_process
from .test_edge import RawClient
from .test_ws_frames import client_frame

RESERVED = ["connect", "disconnect", "connect_error", "__disconnect_final", "*", "message", "error"]

names = st.sampled_from(RESERVED + ["", "time:sync", "no:such"]) | st.none() | st.booleans() | st.integers() | \
    st.floats(allow_nan=False) | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=3),
                                                                                      st.integers(), max_size=2)
# Bodies as text: what json.dumps writes, and what it never would.
odd_json = st.sampled_from([
    "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" * 5000, '"\\u0000"', '"a\\ud83d"', "[" * 1200 + "]" * 1200,
    '{"a":' * 600 + "1" + "}" * 600, "", "[", "nul\x00l", '{"workout_id": 1e308}', "[]", "{}", "null", "3",
])
payloads = st.builds(json.dumps, st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8),
                                                  max_size=3)) | odd_json


@st.composite
def raw_events(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """(a Socket.IO packet after Engine.IO's `4`, binary attachments to send after it)."""
    shape = draw(st.sampled_from(["event", "event", "named", "body only", "binary", "binary ack"]))
    if shape == "event":
        body = f"[{json.dumps(draw(names))},{draw(payloads)}]"
    elif shape == "named":
        body = f'["time:sync",{draw(payloads)}]'
    elif shape == "body only":
        body = draw(payloads)
    else:
        count = draw(st.integers(1, 3))
        kind = "5" if shape == "binary" else "6"
        body = json.dumps(["time:sync", {"_placeholder": True, "num": 0}])
        return f"{kind}{count}-{{id}}{body}".encode(), [b"\x00" * draw(st.integers(0, 64))] * count
    return f"2{{id}}{body}".encode(), []


class Errors(logging.Handler):
    """Every record at ERROR or above from liveset's loggers."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def errors() -> Iterator[Errors]:
    """liveset's loggers, and the two libraries' own (which print tracebacks of their handlers)."""
    handler = Errors()
    loggers = [logging.getLogger(name) for name in ("liveset", "engineio", "socketio")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.fixture(scope="module")
async def raw_server(redis_url: str, database_url: str) -> AsyncIterator[str]:
    # One device per user: a socket that gave its slot up while staying open would show.
    async with in_process(make_settings(redis_url, database_url, rate_per_s=1e6, rate_burst=1e6,
                                        max_devices_per_user=1)) as url:
        yield url


@pytest.fixture(scope="module")
async def raw_workout(raw_server: str) -> tuple[str, str]:
    """A user with a live workout holding one set: the state that must not change."""
    uid = f"raw-{uuid.uuid4().hex[:8]}"
    client, _ = await RawClient.open(raw_server)
    await client.connect(uid)
    wid = str(uuid.uuid4())
    for n, (event, payload) in enumerate([
        ("workout:start", {"workout_id": wid}),
        ("set:complete", {"workout_id": wid, "set_id": str(uuid.uuid4()), "exercise_id": "bench", "reps": 5}),
    ]):
        client.send(client_frame(TEXT, f"42{n}{json.dumps([event, payload])}".encode()))
        assert (await _acks(client, [str(n)]))[str(n)]["ok"]
    await client.close()
    return uid, wid


async def _acks(client: RawClient, ids: list[str]) -> dict[str, Any]:
    """The acks of these ids, each checked to come once, in the order asked."""
    got: dict[str, Any] = {}
    while len(got) < len(ids):
        payload = (await client.text_starting(b"43"))[2:].decode()
        ack_id, _, body = payload.partition("[")
        assert ack_id not in got, f"a second ack for {ack_id}"
        assert ack_id == ids[len(got)], (ack_id, ids)
        got[ack_id] = json.loads("[" + body)[0]
    return got


async def _state(client: RawClient, wid: str, ack_id: str) -> Any:
    client.send(client_frame(TEXT, f'42{ack_id}["workout:sync",{{"workout_id":"{wid}","since_seq":0}}]'.encode()))
    reply = (await _acks(client, [ack_id]))[ack_id]
    assert reply["ok"], reply
    return reply["data"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(raw_events(), min_size=1, max_size=6), ack=st.lists(st.booleans(), min_size=6, max_size=6))
async def test_every_event_a_client_frames_gets_one_ack_and_changes_nothing(
    raw_workout: tuple[str, str], raw_server: str, errors: Errors, events: list[tuple[bytes, list[bytes]]],
    ack: list[bool],
) -> None:
    uid, wid = raw_workout
    client, _ = await RawClient.open(raw_server)  # a connection per example: what one leaves is its own
    try:
        await client.connect(uid)
        before = await _state(client, wid, "900")
        asked = []
        for n, (packet, attachments) in enumerate(events):
            ack_id = str(10 + n) if ack[n] else ""
            asked += [ack_id] if ack_id and not packet.startswith(b"6") else []
            # A space after the id: a body that begins with a digit ("3", "1e400") would lengthen it.
            client.send(client_frame(TEXT, b"4" + packet.replace(b"{id}", ack_id.encode() + b" ")),
                        *(client_frame(BINARY, a) for a in attachments))
        for reply in (await _acks(client, asked)).values():  # time:sync with {} is an event like any other
            assert reply["ok"] or reply["error"]["code"] in ("invalid_payload", "too_large"), reply
        assert await _state(client, wid, "901") == before  # nothing changed, and the link lives on
        assert not errors.records, [r.getMessage() for r in errors.records]
        # Still the user's one device: another of the user is refused.
        second, _ = await RawClient.open(raw_server)
        second.send(client_frame(TEXT, b"40" + json.dumps({"token": token(uid), "device_id": "second"}).encode()))
        refused = json.loads((await second.text_starting(b"44"))[2:])
        assert "too many devices" in refused["data"]["message"], refused
        await second.close()
    finally:
        await client.close()


@pytest.mark.parametrize("namespace", ["", "/,", "/?x=1,"])  # the default namespace, however written
@pytest.mark.parametrize("name", RESERVED)
async def test_a_reserved_name_from_a_client_is_an_unknown_event(raw_server: str, name: str, namespace: str) -> None:
    """python-socketio ran its own connect / disconnect handlers for a client event of that name."""
    uid = f"reserved-{uuid.uuid4().hex[:8]}"
    client, _ = await RawClient.open(raw_server)
    await client.connect(uid)
    event = json.dumps([name, {"token": token("someone-else"), "device_id": "x"}])
    client.send(client_frame(TEXT, f"42{namespace}1{event}".encode()))
    reply = (await _acks(client, ["1"]))["1"]
    assert reply["error"]["code"] == "invalid_payload" and "unknown event" in reply["error"]["message"], reply
    client.send(client_frame(TEXT, b'422["time:sync",{}]'))
    assert (await _acks(client, ["2"]))["2"]["ok"]  # still connected, as itself
    await client.close()


async def test_on_long_polling_too_every_event_is_answered_by_the_dispatch_table(raw_server: str,
                                                                                errors: Errors) -> None:
    uid = f"polling-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=raw_server, timeout=5) as http:
        opened = (await http.get("/socket.io/?EIO=4&transport=polling")).text
        sid = json.loads(opened[1:])["sid"]
        url = f"/socket.io/?EIO=4&transport=polling&sid={sid}"

        async def received() -> list[str]:
            return (await http.get(url)).text.split("\x1e")

        await http.post(url, content="40" + json.dumps({"token": token(uid), "device_id": "poll"}))
        packets: list[str] = []
        while not any(p.startswith('42["session:ready"') for p in packets):
            packets += await received()
        # Socket.IO packets; Engine.IO's message type (4) goes before each.
        sent = ['21["disconnect"]', '22[7,{}]', '23["time:sync",NaN]', "24{}", '25["time:sync",{}]']
        unreadable = ["9", "3x", "0/nowhere,", "51-/other,[1]", "61-[]"]  # no ack asked: none comes
        await http.post(url, content="\x1e".join("4" + s for s in unreadable + sent))
        acks: dict[str, Any] = {}
        while len(acks) < len(sent):
            for p in await received():
                if p.startswith("43"):
                    ack_id, _, body = p[2:].partition("[")
                    assert ack_id not in acks
                    acks[ack_id] = json.loads("[" + body)[0]
        assert [acks[str(n)]["ok"] for n in range(1, 6)] == [False, False, False, False, True], acks
        assert {acks[str(n)]["error"]["code"] for n in range(1, 5)} == {"invalid_payload"}
    assert not errors.records, [r.getMessage() for r in errors.records]


async def test_a_device_sending_binary_events_gets_an_error_and_nothing_is_buffered(raw_server: str) -> None:
    device = await Device().connect(raw_server, {"token": token(f"bin-{uuid.uuid4().hex[:8]}"), "device_id": "d"})
    try:
        await device.wait_for("session:ready")
        reply = await device.sio.call("time:sync", {"blob": b"\x00" * 1000}, timeout=5)
        assert reply["error"]["code"] == "invalid_payload" and "binary" in reply["error"]["message"], reply
        assert device.sio.eio.state == "connected"
        await ok(device, "time:sync", {})
    finally:
        await device.close()


async def test_malformed_events_count_against_the_rate_limit_like_any_other(redis_url: str, database_url: str) -> None:
    async with in_process(make_settings(redis_url, database_url, rate_per_s=1, rate_burst=3)) as url:
        client, _ = await RawClient.open(url)
        await client.connect(f"limited-{uuid.uuid4().hex[:8]}")
        client.send(*(client_frame(TEXT, f"42{n} {body}".encode())
                      for n, body in enumerate(["[NaN", '["*",{}]', "[7]", '["disconnect"]', '["time:sync",{}]'])))
        codes = [a["error"]["code"] for a in (await _acks(client, [str(n) for n in range(5)])).values()]
        assert codes == ["invalid_payload"] * 3 + ["rate_limited"] * 2, codes
        await client.close()


async def _polling_session(http: httpx.AsyncClient) -> str:
    """A new user's Socket.IO session over long-polling, connected (session:ready read): its URL."""
    sid = json.loads((await http.get("/socket.io/?EIO=4&transport=polling")).text[1:])["sid"]
    url = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    await http.post(url, content="40" + json.dumps({"token": token(f"poll-{uuid.uuid4().hex[:8]}"),
                                                    "device_id": "poll"}))
    packets: list[str] = []
    while not any(p.startswith('42["session:ready"') for p in packets):
        packets += (await http.get(url)).text.split("\x1e")
    return url


async def test_a_long_polling_post_of_many_events_gets_every_ack(raw_server: str) -> None:
    """socket.io-client sends every event it buffered while offline in one POST; python-engineio
    took at most 16 packets and dropped the whole batch beyond that."""
    async with httpx.AsyncClient(base_url=raw_server, timeout=5) as http:
        url = await _polling_session(http)
        assert (await http.post(url, content="\x1e".join(f'42{n}["time:sync",{{}}]' for n in range(40)))).text == "OK"
        acks: set[str] = set()
        while len(acks) < 40:
            acks |= {p[2:].partition("[")[0] for p in (await http.get(url)).text.split("\x1e") if p.startswith("43")}
        assert acks == {str(n) for n in range(40)}


async def test_a_post_to_a_session_the_client_closed_is_a_bad_request(raw_server: str, errors: Errors) -> None:
    """python-engineio raised inside (KeyError), and uvicorn answered 500 with a traceback."""
    async with httpx.AsyncClient(base_url=raw_server, timeout=5) as http:
        sid = json.loads((await http.get("/socket.io/?EIO=4&transport=polling")).text[1:])["sid"]
        url = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
        assert (await http.post(url, content="1")).status_code == 200  # Engine.IO's close
        assert (await http.post(url, content="2")).status_code == 400
        assert (await http.get(url)).status_code == 400  # python-engineio's own answer to an unknown sid
    # That one says "Invalid session" once per process, in a line; nothing logs a traceback.
    assert not [r for r in errors.records if r.exc_info], [r.getMessage() for r in errors.records]


@pytest.mark.parametrize("body", [b"", b"\x00\x01\xff", b"\x1e\x1e", b"4\x1e", b"9", b"\x00", b"bQ", "bé".encode(),
                                  b"0", b"2", b"6", b"\x1e".join([b"3"] * 257), b"4" + b"x" * (1024 * 1024)],
                         ids=["empty", "not-utf8", "empty-packets", "trailing-separator", "unknown-type", "nul",
                              "bad-base64", "base64-not-ascii", "open", "ping", "noop", "257-packets",
                              "over-max-message-bytes"])
async def test_a_long_polling_post_that_is_not_packets_is_a_bad_request_and_the_session_goes_on(
        raw_server: str, errors: Errors, body: bytes) -> None:
    """python-engineio answered these "OK" and logged each as ERROR with its traceback, or (an
    open, a ping, a noop, too large a body) ended the session and left the POST unanswered."""
    async with httpx.AsyncClient(base_url=raw_server, timeout=5) as http:
        url = await _polling_session(http)
        packets: list[str] = []
        refused = await http.post(url, content=body)
        assert refused.status_code == 400 and refused.text.startswith("bad request: "), refused.text
        assert (await http.post(url, content='421["time:sync",{}]')).text == "OK"
        while not any(p.startswith("431") for p in packets):
            packets += (await http.get(url)).text.split("\x1e")
    assert not errors.records, [r.getMessage() for r in errors.records]


async def test_a_request_for_no_session_leaves_no_garbage(raw_server: str) -> None:
    """python-engineio answered it 400 too, but left a class per request in a reference cycle that
    only the 10-minute full collection frees: 470 a second from one client, ~1 MB a second."""
    def classes() -> int:
        return sum(isinstance(o, type) for o in gc.get_objects())

    async with httpx.AsyncClient(base_url=raw_server, timeout=5) as http:
        await http.get("/socket.io/?EIO=4&transport=polling&sid=warm-up")
        before = classes()
        for n in range(200):
            refused = await http.get(f"/socket.io/?EIO=4&transport=polling&sid=nope{n}")
            assert refused.status_code == 400
        assert classes() - before < 20


async def test_engineio_refusing_a_protocol_version_or_a_session_logs_no_error(raw_server: str, errors: Errors) -> None:
    async with httpx.AsyncClient(base_url=raw_server, timeout=5) as http:
        assert (await http.get("/socket.io/?EIO=3&transport=polling")).status_code == 400
        assert (await http.get("/socket.io/?EIO=4&transport=polling&sid=nope")).status_code == 400
    assert not errors.records, [r.getMessage() for r in errors.records]


async def test_a_client_ack_is_dropped_without_a_word(raw_server: str, caplog: pytest.LogCaptureFixture) -> None:
    # No event of ours asks a client for an ack; python-socketio logged "Unknown callback" for each.
    client, _ = await RawClient.open(raw_server)
    await client.connect(f"raw-{uuid.uuid4().hex[:8]}")
    with caplog.at_level(logging.INFO):
        client.send(client_frame(TEXT, b'4317["late"]'), client_frame(TEXT, b'421["time:sync",{}]'))
        assert json.loads((await client.text_starting(b"431"))[3:])[0]["ok"] is True
    assert [r.getMessage() for r in caplog.records if "callback" in r.getMessage().lower()] == []
    await client.close()
