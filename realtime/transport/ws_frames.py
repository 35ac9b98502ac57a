"""RFC 6455 framing, server side: the handshake's accept key, frames in, frames out
(and, masked, a client's frames out: the load generator's client uses `frame` too).

Small on purpose: no extensions (permessage-deflate is never negotiated, as
the Procfile has it for uvicorn too), no subprotocols. What a client sends is
read with a size limit, and any breach of the RFC is a `ProtocolError`
carrying the close code to answer with. Unmasking is websockets' C routine.
"""

from __future__ import annotations

import base64
import hashlib
import struct

try:  # websockets' C speedup, as websockets.frames takes it
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - a build without it
    from websockets.utils import apply_mask

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

PROTOCOL_ERROR, INVALID_DATA, TOO_BIG, GOING_AWAY, NORMAL, RESTARTING = 1002, 1007, 1009, 1001, 1000, 1012

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_SHORT = struct.Struct("!H")
_LONG = struct.Struct("!Q")


class ProtocolError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def valid_key(key: bytes) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        return False


def frame(opcode: int, payload: bytes, mask: bytes = b"") -> bytes:
    """One unfragmented frame: unmasked, as a server's always are, or masked with the four
    bytes of `mask`, as a client's must be (the load generator's)."""
    n, bit = len(payload), 0x80 if mask else 0
    if mask:
        payload = mask + apply_mask(payload, mask)
    if n < 126:
        return bytes((0x80 | opcode, bit | n)) + payload
    if n < 65536:
        return bytes((0x80 | opcode, bit | 126)) + _SHORT.pack(n) + payload
    return bytes((0x80 | opcode, bit | 127)) + _LONG.pack(n) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    return frame(CLOSE, _SHORT.pack(code) + reason.encode()[:120])


class FrameReader:
    """Turns a client's bytes into whole messages: (opcode, payload), fragments joined.

    Holds no buffer while a read ends on a frame boundary, which is nearly always. A frame
    that arrives in pieces is gathered until it is whole, not parsed again at every piece, and
    each fragment of a message counts its frame's bytes toward the size limit: neither a
    trickle of one-byte reads nor a stream of empty fragments costs more than it sends.
    """

    __slots__ = ("max_size", "_pending", "_need", "_fragments", "_fragment_size", "_fragment_opcode")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._pending: bytes | bytearray = b""  # a bytearray only while a frame is partly here
        self._need = 0  # bytes the pending frame needs before it can be parsed further
        self._fragments: list[bytes] | None = None
        self._fragment_size = 0
        self._fragment_opcode = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        if self._pending:
            self._pending += data
            if len(self._pending) < self._need:
                return []
            data, self._pending = bytes(self._pending), b""
        messages: list[tuple[int, bytes]] = []
        at, end = 0, len(data)
        while True:
            if end - at < 2:
                self._need = 2
                break
            first, second = data[at], data[at + 1]
            if first & 0x70:
                raise ProtocolError(PROTOCOL_ERROR, "no extension was negotiated")
            if not second & 0x80:
                raise ProtocolError(PROTOCOL_ERROR, "a client's frames must be masked")
            opcode, length, head = first & 0x0F, second & 0x7F, at + 2
            if opcode >= CLOSE and (length > 125 or not first & 0x80):
                raise ProtocolError(PROTOCOL_ERROR, "control frames are short and never fragmented")
            if length == 126:
                if end - head < 2:
                    self._need = 4
                    break
                length = _SHORT.unpack_from(data, head)[0]
                head += 2
            elif length == 127:
                if end - head < 8:
                    self._need = 10
                    break
                length = _LONG.unpack_from(data, head)[0]
                head += 8
            if length > self.max_size:
                raise ProtocolError(TOO_BIG, f"a message may have at most {self.max_size} bytes")
            if end - head < 4 + length:
                self._need = head + 4 + length - at
                break
            payload = apply_mask(data[head + 4:head + 4 + length], data[head:head + 4])
            message = self._message(first & 0x80, opcode, payload, head + 4 + length - at)
            at = head + 4 + length
            if message is not None:
                messages.append(message)
        if at < end:
            self._pending = bytearray(data[at:])
        return messages

    def _message(self, fin: int, opcode: int, payload: bytes, frame_size: int) -> tuple[int, bytes] | None:
        if opcode >= CLOSE:
            if opcode not in (CLOSE, PING, PONG):
                raise ProtocolError(PROTOCOL_ERROR, f"unknown opcode {opcode}")
            return opcode, payload
        if opcode == CONTINUATION:
            if self._fragments is None:
                raise ProtocolError(PROTOCOL_ERROR, "continuation without a first fragment")
            self._fragments.append(payload)
            self._fragment_size += frame_size
            if self._fragment_size > self.max_size:
                raise ProtocolError(TOO_BIG, f"a message may have at most {self.max_size} bytes")
            if not fin:
                return None
            whole, self._fragments = b"".join(self._fragments), None
            return self._fragment_opcode, whole
        if opcode not in (TEXT, BINARY):
            raise ProtocolError(PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if self._fragments is not None:
            raise ProtocolError(PROTOCOL_ERROR, "a new message before the last one's final fragment")
        if fin:
            return opcode, payload
        self._fragments, self._fragment_size, self._fragment_opcode = [payload], frame_size, opcode
        return None
