"""UDP flows over the mesh's byte stream, pure. One meshd/1 stream between a sidecar and another node's gateway
(opened with `DATAGRAMS`, sidecar/mesh/wire.py) carries every UDP flow of that sidecar to that node's pods, as
messages: a 2-byte big-endian length, then the message, whose first byte is its kind and next 4 bytes its flow id
(chosen by the sidecar):

    OPEN  flow "<podIP>:<port>"   the sidecar opens a flow to one of the gateway's pods (a UDP socket there)
    DATA  flow <datagram>         one datagram, either way (an empty one is a DATA of 5 bytes)
    CLOSE flow [reason]           either side ends the flow: the sidecar when it went idle or moved; the gateway
                                  when its pod refused (ICMP port unreachable) or the OPEN was refused (reason)

The stream's own chunks may split or join messages anywhere: the deframer keeps what a read left incomplete."""

from __future__ import annotations

import struct

OPEN, DATA, CLOSE = 1, 2, 3
KINDS = frozenset({OPEN, DATA, CLOSE})
LENGTH = 2
HEADER = 5  # kind + flow id
MAX_MESSAGE = 0xFFFF  # what 2 bytes can say
MAX_DATAGRAM = MAX_MESSAGE - HEADER  # 65,530: more than an IPv4 UDP payload (65,507)
_PACK = struct.Struct("!HBI").pack  # length, kind, flow id
_KIND_FLOW = struct.Struct("!BI").unpack_from


def message(kind: int, flow: int, body: bytes = b"") -> bytes:
    """One message as it travels; ValueError for a body too long or a flow id outside 4 bytes."""
    size = len(body)
    if size > MAX_DATAGRAM:
        raise ValueError(f"a message body of {size} bytes is longer than {MAX_DATAGRAM}")
    try:
        return _PACK(HEADER + size, kind, flow) + body
    except struct.error:
        raise ValueError(f"flow id {flow} does not fit in 4 bytes") from None


def parse(data: bytes) -> tuple[int, int, bytes]:
    """(kind, flow id, body) of one message (without its length); ValueError naming what is wrong."""
    if len(data) < HEADER:
        raise ValueError(f"a message of {len(data)} bytes is shorter than its {HEADER}-byte header")
    kind, flow = _KIND_FLOW(data)
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind}")
    return kind, flow, data[HEADER:]


class MessageDeframer:
    """A byte stream back into whole messages (each without its length), in order; bytes of an unfinished one wait
    for the next feed. `pending` is how many bytes wait (at most one message's worth). `messages` parses them as
    it goes (the hot path: one pass)."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = b""

    @property
    def pending(self) -> int:
        return len(self.buf)

    def feed(self, data: bytes) -> list[bytes]:
        buf = self.buf + data if self.buf else data
        out: list[bytes] = []
        i, size = 0, len(buf)
        while size - i >= LENGTH:
            end = i + LENGTH + int.from_bytes(buf[i:i + LENGTH], "big")
            if end > size:
                break
            out.append(buf[i + LENGTH:end])
            i = end
        self.buf = buf[i:]
        return out

    def messages(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """feed() and parse() in one pass: (kind, flow id, body) of each whole message; ValueError for a broken
        one (what came before it is lost with the stream: the caller ends it)."""
        buf = self.buf + data if self.buf else data
        out: list[tuple[int, int, bytes]] = []
        i, size = 0, len(buf)
        while size - i >= LENGTH:
            length = (buf[i] << 8) | buf[i + 1]
            end = i + LENGTH + length
            if end > size:
                break
            if length < HEADER:
                raise ValueError(f"a message of {length} bytes is shorter than its {HEADER}-byte header")
            kind, flow = _KIND_FLOW(buf, i + LENGTH)
            if kind not in KINDS:
                raise ValueError(f"unknown message kind {kind}")
            out.append((kind, flow, buf[i + LENGTH + HEADER:end]))
            i = end
        self.buf = buf[i:] if i else buf
        return out


__all__ = ["CLOSE", "DATA", "MAX_DATAGRAM", "OPEN", "MessageDeframer", "message", "parse"]
