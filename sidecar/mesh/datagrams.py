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

OPEN, DATA, CLOSE = 1, 2, 3
KINDS = frozenset({OPEN, DATA, CLOSE})
LENGTH = 2
HEADER = 5  # kind + flow id
MAX_MESSAGE = 0xFFFF  # what 2 bytes can say
MAX_DATAGRAM = MAX_MESSAGE - HEADER  # 65,530: more than an IPv4 UDP payload (65,507)


def message(kind: int, flow: int, body: bytes = b"") -> bytes:
    """One message as it travels; ValueError for a body too long or a flow id outside 4 bytes."""
    if len(body) > MAX_DATAGRAM:
        raise ValueError(f"a message body of {len(body)} bytes is longer than {MAX_DATAGRAM}")
    if not 0 <= flow <= 0xFFFFFFFF:
        raise ValueError(f"flow id {flow} does not fit in 4 bytes")
    return (HEADER + len(body)).to_bytes(LENGTH, "big") + bytes((kind,)) + flow.to_bytes(4, "big") + body


def parse(data: bytes) -> tuple[int, int, bytes]:
    """(kind, flow id, body) of one message (without its length); ValueError naming what is wrong."""
    if len(data) < HEADER:
        raise ValueError(f"a message of {len(data)} bytes is shorter than its {HEADER}-byte header")
    if data[0] not in KINDS:
        raise ValueError(f"unknown message kind {data[0]}")
    return data[0], int.from_bytes(data[1:HEADER], "big"), data[HEADER:]


class MessageDeframer:
    """A byte stream back into whole messages (each without its length), in order; bytes of an unfinished one wait
    for the next feed. `pending` is how many bytes wait (at most one message's worth)."""

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


__all__ = ["CLOSE", "DATA", "MAX_DATAGRAM", "OPEN", "MessageDeframer", "message", "parse"]
