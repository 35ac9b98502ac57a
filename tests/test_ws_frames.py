"""The edge's websocket framing (realtime/transport/ws_frames.py), fed the way TCP delivers: in any pieces."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.transport import ws_frames
from realtime.transport.ws_frames import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PROTOCOL_ERROR,
    TEXT,
    TOO_BIG,
    FrameReader,
    ProtocolError,
    accept_key,
    frame,
)


def client_frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = True, rsv: int = 0) -> bytes:
    """A frame as a client sends it: masked, with the shortest length encoding."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def feed_in_pieces(reader: FrameReader, data: bytes, cuts: list[int]) -> list[tuple[int, bytes]]:
    messages = []
    at = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}) + [len(data)]:
        messages += reader.feed(data[at:cut])
        at = cut
    return messages


def test_the_accept_key_is_rfc_6455s_example() -> None:
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_server_frames_use_each_length_encoding(size: int) -> None:
    encoded = frame(BINARY, b"x" * size)
    assert encoded[0] == 0x80 | BINARY and not encoded[1] & 0x80  # final, unmasked
    header = {True: 2, False: 4 if size < 65536 else 10}[size < 126]
    assert len(encoded) == header + size


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_a_masked_frame_is_read_back_as_it_was_sent(size: int) -> None:
    payload = os.urandom(size)
    encoded = frame(BINARY, payload, os.urandom(4))
    assert encoded[1] & 0x80  # masked, as a client's frame must be
    assert FrameReader(max_size=2**20).feed(encoded) == [(BINARY, payload)]


@given(
    messages=st.lists(st.tuples(st.sampled_from([TEXT, BINARY]), st.binary(max_size=300)), max_size=6),
    fragments=st.integers(min_value=1, max_value=3),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=8),
)
def test_messages_arrive_whole_however_tcp_cuts_them(
    messages: list[tuple[int, bytes]], fragments: int, cuts: list[int]
) -> None:
    wire, pings = b"", 0
    for opcode, payload in messages:
        step = max(1, len(payload) // fragments)
        parts = [payload[i:i + step] for i in range(0, len(payload), step)] or [b""]
        for n, part in enumerate(parts):
            wire += client_frame(opcode if n == 0 else CONTINUATION, part, fin=n == len(parts) - 1)
            if n == 0 and len(parts) > 1:
                wire += client_frame(PING, b"between fragments")  # control frames may interleave
                pings += 1
    got = feed_in_pieces(FrameReader(max_size=1000), wire, cuts)
    assert [m for m in got if m[0] != PING] == messages
    assert got.count((PING, b"between fragments")) == pings


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (client_frame(TEXT, b"hi", masked=False), PROTOCOL_ERROR),
        (client_frame(TEXT, b"hi", rsv=0x40), PROTOCOL_ERROR),  # compressed, never negotiated
        (client_frame(0x3, b"hi"), PROTOCOL_ERROR),  # reserved opcode
        (client_frame(CONTINUATION, b"hi"), PROTOCOL_ERROR),  # nothing to continue
        (client_frame(TEXT, b"a", fin=False) + client_frame(TEXT, b"b"), PROTOCOL_ERROR),
        (client_frame(PING, b"p", fin=False), PROTOCOL_ERROR),
        (client_frame(CLOSE, b"x" * 126), PROTOCOL_ERROR),
        (client_frame(TEXT, b"x" * 101), TOO_BIG),
        (client_frame(TEXT, b"x" * 60, fin=False) + client_frame(CONTINUATION, b"x" * 60), TOO_BIG),
    ],
)
def test_a_broken_frame_is_refused_with_its_close_code(wire: bytes, code: int) -> None:
    with pytest.raises(ProtocolError) as refused:
        FrameReader(max_size=100).feed(wire)
    assert refused.value.code == code


def test_an_oversized_frame_is_refused_from_its_header_alone() -> None:
    header = client_frame(BINARY, b"x" * 70_000)[:14]  # the length is known before the payload comes
    with pytest.raises(ProtocolError) as refused:
        FrameReader(max_size=65_536).feed(header)
    assert refused.value.code == TOO_BIG


def test_empty_fragments_count_toward_the_size_limit() -> None:
    """Each fragment counts the bytes of its frame: a stream of empty fragments ends at the
    limit like a big message, not after holding a list without end."""
    reader = FrameReader(max_size=1024)
    reader.feed(client_frame(TEXT, b"4", fin=False))
    empty = client_frame(CONTINUATION, b"", fin=False)
    with pytest.raises(ProtocolError) as refused:
        for _ in range(1024 // len(empty) + 1):
            reader.feed(empty)
    assert refused.value.code == TOO_BIG


def test_a_frame_trickled_byte_by_byte_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A frame that arrives a byte at a time is gathered until it is whole: its header is not
    parsed again at every byte (that made a trickle cost the square of its size)."""
    wire = client_frame(TEXT, b"x" * 5000)  # a 16-bit length: read with _SHORT
    parsed = []
    real = ws_frames._SHORT

    class Counting:
        def unpack_from(self, data: bytes, at: int) -> tuple[int, ...]:
            parsed.append(at)
            return real.unpack_from(data, at)

    monkeypatch.setattr(ws_frames, "_SHORT", Counting())
    reader = FrameReader(max_size=65_536)
    got = [m for i in range(len(wire)) for m in reader.feed(wire[i:i + 1])]
    assert got == [(TEXT, b"x" * 5000)]
    assert len(parsed) <= 2, len(parsed)  # once to learn the length, once when the frame is whole
    assert not reader._pending
