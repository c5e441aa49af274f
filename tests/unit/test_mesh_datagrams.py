"""The framing of UDP datagrams over the mesh's stream (sidecar/mesh/datagrams.py), and the meshd/1 line that
opens a UDP flow (sidecar/mesh/wire.py)."""

from __future__ import annotations

import pytest

from sidecar.mesh.datagrams import MAX_DATAGRAM, DatagramDeframer, frame_datagram
from sidecar.mesh.wire import connect_line, parse_connect, parse_request


@pytest.mark.parametrize(("datagram", "framed"), [
    (b"", b"\x00\x00"),  # UDP allows an empty datagram: it travels as a length of 0
    (b"a", b"\x00\x01a"),
    (b"x" * 300, b"\x01\x2c" + b"x" * 300),
    (b"y" * MAX_DATAGRAM, b"\xff\xff" + b"y" * MAX_DATAGRAM),
])
def test_a_datagram_is_its_length_on_two_bytes_then_its_bytes(datagram: bytes, framed: bytes) -> None:
    assert frame_datagram(datagram) == framed
    assert DatagramDeframer().feed(framed) == [datagram]


def test_a_datagram_longer_than_two_bytes_can_say_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than 65535"):
        frame_datagram(b"z" * (MAX_DATAGRAM + 1))


DATAGRAMS = [b"\x12\x34query", b"", b"q" * 1000, b"\x00\x00", b"r" * 70, b"last"]
STREAM = b"".join(frame_datagram(d) for d in DATAGRAMS)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1001, 1002, 1003, len(STREAM) - 1, len(STREAM)])
def test_datagrams_come_back_whole_and_in_order_however_the_stream_is_split(size: int) -> None:
    deframer = DatagramDeframer()
    out: list[bytes] = []
    for i in range(0, len(STREAM), size):
        out += deframer.feed(STREAM[i:i + size])
    assert out == DATAGRAMS
    assert deframer.pending == 0


@pytest.mark.parametrize(("chunks", "datagrams", "pending"), [
    ([b"\x00"], [], 1),  # half a header
    ([b"\x00\x05ab"], [], 4),  # a header and part of its datagram
    ([b"\x00\x05ab", b"cde"], [b"abcde"], 0),
    ([b"\x00\x01a\x00"], [b"a"], 1),  # a whole one, then the start of the next
    ([b"\x00\x00\x00\x00"], [b"", b""], 0),  # two empty ones
])
def test_what_a_read_leaves_unfinished_waits_for_the_next(chunks: list[bytes], datagrams: list[bytes],
                                                          pending: int) -> None:
    deframer = DatagramDeframer()
    out: list[bytes] = []
    for chunk in chunks:
        out += deframer.feed(chunk)
    assert (out, deframer.pending) == (datagrams, pending)


@pytest.mark.parametrize(("line", "expected"), [
    (b"UDP 127.213.0.5:53", ("udp", "127.213.0.5", 53)),
    (b"UDP [fd00::5]:5353", ("udp", "fd00::5", 5353)),
    (b"CONNECT 10.1.2.3:8080", ("tcp", "10.1.2.3", 8080)),
    (b"UDP dns.example:53", ValueError),
    (b"UDP 10.1.2.3:70000", ValueError),
    (b"udp 10.1.2.3:53", ValueError),  # verbs are upper case, as CONNECT
    (b"SCTP 10.1.2.3:53", ValueError),
])
def test_a_udp_flow_is_opened_with_its_own_verb(line: bytes, expected: tuple[str, str, int] | type) -> None:
    if expected is ValueError:
        with pytest.raises(ValueError):
            parse_request(line)
        return
    assert parse_request(line) == expected
    protocol, address, port = expected  # type: ignore[misc]
    assert parse_request(connect_line(address, port, protocol=protocol).rstrip(b"\n")) == expected


def test_a_udp_line_is_no_connect_line() -> None:
    with pytest.raises(ValueError, match="expected CONNECT"):
        parse_connect(b"UDP 10.1.2.3:53")
