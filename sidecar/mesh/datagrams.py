"""UDP datagrams over the mesh's byte stream, pure: each datagram is a 2-byte big-endian length and that many
bytes (an empty datagram is a length of 0, as UDP allows one). A UDP flow to another node's pod is one meshd/1
stream opened with `UDP <podIP>:<port>` (sidecar/mesh/wire.py) that carries these frames both ways; the stream's
own chunks may split or join frames anywhere, so the deframer keeps what a read left incomplete."""

from __future__ import annotations

MAX_DATAGRAM = 0xFFFF  # what 2 bytes can say (an IPv4 UDP payload is at most 65,507)
HEADER = 2


def frame_datagram(data: bytes) -> bytes:
    """One datagram as it travels; ValueError for one longer than MAX_DATAGRAM (no UDP socket delivers one)."""
    if len(data) > MAX_DATAGRAM:
        raise ValueError(f"a datagram of {len(data)} bytes is longer than {MAX_DATAGRAM}")
    return len(data).to_bytes(HEADER, "big") + data


class DatagramDeframer:
    """A byte stream back into whole datagrams, in order; bytes of an unfinished frame wait for the next feed.
    `pending` is how many bytes wait (at most one frame's worth: 2 + 65,535)."""

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
        while size - i >= HEADER:
            end = i + HEADER + int.from_bytes(buf[i:i + HEADER], "big")
            if end > size:
                break
            out.append(buf[i + HEADER:end])
            i = end
        self.buf = buf[i:]
        return out


__all__ = ["MAX_DATAGRAM", "DatagramDeframer", "frame_datagram"]
