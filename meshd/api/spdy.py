"""A SPDY/3.1 codec, just enough for `portforward.k8s.io` (kubectl 1.37 tunnels it in WebSocket binary messages
by default, subprotocol `SPDY/3.1+portforward.k8s.io`): frames in, frames out, no I/O. Header blocks are zlib
streams primed with SPDY's dictionary, one stream per direction for the whole connection, hence the classes.
Flow control is not enforced (kubectl's spdystream neither sends nor awaits window updates)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from meshd.api.spdy_dictionary import DICTIONARY

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
MAX_FRAME = 16 * 1024 * 1024 - 1  # a frame's length field is 24 bits
MAX_HEADERS = 64 * 1024  # a decompressed header block larger than this is an attack, not a port-forward
RST_PROTOCOL_ERROR, RST_REFUSED_STREAM = 1, 3


class SpdyError(ValueError):
    """The peer broke the protocol; the connection ends."""


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes
    fin: bool = False


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: dict[str, str] = field(default_factory=dict)
    fin: bool = False


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Ping:
    id: int


@dataclass(frozen=True)
class GoAway:
    last_stream_id: int


@dataclass(frozen=True)
class Other:
    """A frame port-forwarding needs nothing from (SETTINGS, WINDOW_UPDATE, HEADERS, SYN_REPLY)."""

    type: int


Frame = Data | SynStream | RstStream | Ping | GoAway | Other


def parse_header_block(block: bytes) -> dict[str, str]:
    """SPDY/3 name/value pairs (32-bit count and lengths); repeated values joined by NUL are kept whole."""
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        offset, headers = 4, {}
        for _ in range(count):
            (size,) = struct.unpack_from(">I", block, offset)
            name = block[offset + 4:offset + 4 + size].decode()
            offset += 4 + size
            (size,) = struct.unpack_from(">I", block, offset)
            value = block[offset + 4:offset + 4 + size].decode()
            offset += 4 + size
            if offset > len(block):
                raise SpdyError("header block is truncated")
            headers[name.lower()] = value
    except (struct.error, UnicodeDecodeError) as error:
        raise SpdyError(f"malformed header block: {error}") from error
    return headers


def header_block(headers: dict[str, str]) -> bytes:
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        for text in (name.lower(), value):
            raw = text.encode()
            out.append(struct.pack(">I", len(raw)) + raw)
    return b"".join(out)


class Decoder:
    """Bytes from the client -> whole frames; keeps partial frames and the header decompressor between feeds."""

    def __init__(self) -> None:
        self._buffer = b""
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 8:
            flags = self._buffer[4]
            length = int.from_bytes(self._buffer[5:8], "big")
            if len(self._buffer) < 8 + length:
                break
            head, payload = self._buffer[:8], self._buffer[8:8 + length]
            self._buffer = self._buffer[8 + length:]
            frames.append(self._frame(head, flags, payload))
        return frames

    def _frame(self, head: bytes, flags: int, payload: bytes) -> Frame:
        if not head[0] & 0x80:
            return Data(int.from_bytes(head[:4], "big") & 0x7FFFFFFF, payload, bool(flags & FLAG_FIN))
        version, kind = struct.unpack(">HH", head[:4])
        if version & 0x7FFF != VERSION:
            raise SpdyError(f"SPDY version {version & 0x7FFF} is not 3")
        if kind == SYN_STREAM:
            if len(payload) < 10:
                raise SpdyError("SYN_STREAM is too short")
            stream_id = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            return SynStream(stream_id, self._headers(payload[10:]), bool(flags & FLAG_FIN))
        if kind == SYN_REPLY or kind == HEADERS:
            self._headers(payload[4:])  # keeps the decompressor in step with the peer's compressor
            return Other(kind)
        if kind == RST_STREAM and len(payload) >= 8:
            stream_id, status = struct.unpack(">II", payload[:8])
            return RstStream(stream_id & 0x7FFFFFFF, status)
        if kind == PING and len(payload) >= 4:
            return Ping(struct.unpack(">I", payload[:4])[0])
        if kind == GOAWAY and len(payload) >= 4:
            return GoAway(struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF)
        return Other(kind)

    def _headers(self, compressed: bytes) -> dict[str, str]:
        try:
            block = self._inflate.decompress(compressed, MAX_HEADERS)
        except zlib.error as error:
            raise SpdyError(f"header block does not decompress: {error}") from error
        if self._inflate.unconsumed_tail:
            raise SpdyError(f"header block is over {MAX_HEADERS} bytes")
        return parse_header_block(block)


class Encoder:
    """Frames to the client; SYN_REPLY header blocks share one compressor, so frames go out in encoding order."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(zdict=DICTIONARY)

    def syn_reply(self, stream_id: int, headers: dict[str, str] | None = None, *, fin: bool = False) -> bytes:
        block = self._deflate.compress(header_block(headers or {})) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        return control(SYN_REPLY, struct.pack(">I", stream_id) + block, flags=FLAG_FIN if fin else 0)


def control(kind: int, payload: bytes, *, flags: int = 0) -> bytes:
    return struct.pack(">HHB", 0x8000 | VERSION, kind, flags) + len(payload).to_bytes(3, "big") + payload


def data(stream_id: int, payload: bytes, *, fin: bool = False) -> bytes:
    if len(payload) > MAX_FRAME:
        raise ValueError(f"{len(payload)} bytes do not fit one frame")
    return (struct.pack(">IB", stream_id & 0x7FFFFFFF, FLAG_FIN if fin else 0) + len(payload).to_bytes(3, "big")
            + payload)


def rst_stream(stream_id: int, status: int) -> bytes:
    return control(RST_STREAM, struct.pack(">II", stream_id, status))


def ping(ping_id: int) -> bytes:
    return control(PING, struct.pack(">I", ping_id))
