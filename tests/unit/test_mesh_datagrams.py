"""The messages of UDP flows over the mesh's stream (sidecar/mesh/datagrams.py), and the meshd/1 line that opens
that stream (sidecar/mesh/wire.py)."""

from __future__ import annotations

import pytest

from sidecar.mesh.datagrams import CLOSE, DATA, MAX_DATAGRAM, OPEN, MessageDeframer, message, parse
from sidecar.mesh.wire import connect_line, parse_connect, parse_request, parse_target


@pytest.mark.parametrize(("kind", "flow", "body", "framed"), [
    (OPEN, 1, b"127.213.0.5:53", b"\x00\x13\x01\x00\x00\x00\x01127.213.0.5:53"),
    (DATA, 7, b"", b"\x00\x05\x02\x00\x00\x00\x07"),  # UDP allows an empty datagram
    (DATA, 0xFFFFFFFF, b"q", b"\x00\x06\x02\xff\xff\xff\xffq"),
    (CLOSE, 258, b"", b"\x00\x05\x03\x00\x00\x01\x02"),
    (DATA, 3, b"y" * MAX_DATAGRAM, b"\xff\xff\x02\x00\x00\x00\x03" + b"y" * MAX_DATAGRAM),
])
def test_a_message_is_its_length_its_kind_its_flow_then_its_body(kind: int, flow: int, body: bytes,
                                                                 framed: bytes) -> None:
    assert message(kind, flow, body) == framed
    (raw,) = MessageDeframer().feed(framed)
    assert parse(raw) == (kind, flow, body)


@pytest.mark.parametrize(("args", "error"), [
    ((DATA, 1, b"z" * (MAX_DATAGRAM + 1)), "longer than 65530"),
    ((DATA, 1 << 32, b""), "does not fit in 4 bytes"),
    ((DATA, -1, b""), "does not fit in 4 bytes"),
])
def test_what_cannot_be_framed_is_refused(args: tuple[int, int, bytes], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        message(*args)


@pytest.mark.parametrize(("raw", "error"), [
    (b"", "shorter than its 5-byte header"),
    (b"\x02\x00\x00\x01", "shorter than its 5-byte header"),
    (b"\x09\x00\x00\x00\x01", "unknown message kind 9"),
    (b"\x00\x00\x00\x00\x01", "unknown message kind 0"),
])
def test_a_broken_message_is_named(raw: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse(raw)


MESSAGES = [(OPEN, 1, b"10.0.0.1:53"), (DATA, 1, b"\x12\x34query"), (DATA, 2, b""), (DATA, 1, b"q" * 1000),
            (CLOSE, 2, b"refused"), (DATA, 1, b"last")]
STREAM = b"".join(message(*m) for m in MESSAGES)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1001, 1002, 1003, len(STREAM) - 1, len(STREAM)])
def test_messages_come_back_whole_and_in_order_however_the_stream_is_split(size: int) -> None:
    deframer = MessageDeframer()
    out: list[bytes] = []
    for i in range(0, len(STREAM), size):
        out += deframer.feed(STREAM[i:i + size])
    assert [parse(raw) for raw in out] == MESSAGES
    assert deframer.pending == 0


@pytest.mark.parametrize(("chunks", "messages", "pending"), [
    ([b"\x00"], [], 1),  # half a length
    ([b"\x00\x06\x02\x00"], [], 4),  # a length and part of its message
    ([b"\x00\x06\x02\x00", b"\x00\x00\x01a"], [b"\x02\x00\x00\x00\x01a"], 0),
    ([b"\x00\x05\x03\x00\x00\x00\x01\x00"], [b"\x03\x00\x00\x00\x01"], 1),  # a whole one, then the next begins
])
def test_what_a_read_leaves_unfinished_waits_for_the_next(chunks: list[bytes], messages: list[bytes],
                                                          pending: int) -> None:
    deframer = MessageDeframer()
    out: list[bytes] = []
    for chunk in chunks:
        out += deframer.feed(chunk)
    assert (out, deframer.pending) == (messages, pending)


@pytest.mark.parametrize(("line", "expected"), [
    (b"DATAGRAMS", ("udp", "", 0)),
    (b"CONNECT 10.1.2.3:8080", ("tcp", "10.1.2.3", 8080)),
    (b"DATAGRAMS 10.1.2.3:53", ValueError),
    (b"UDP 10.1.2.3:53", ValueError),
    (b"datagrams", ValueError),  # verbs are upper case, as CONNECT
])
def test_the_stream_of_udp_flows_is_opened_with_its_own_line(line: bytes,
                                                             expected: tuple[str, str, int] | type) -> None:
    if expected is ValueError:
        with pytest.raises(ValueError):
            parse_request(line)
        return
    assert parse_request(line) == expected
    protocol, address, port = expected  # type: ignore[misc]
    assert parse_request(connect_line(address, port, protocol=protocol).rstrip(b"\n")) == expected


@pytest.mark.parametrize(("target", "expected"), [
    ("127.213.0.5:53", ("127.213.0.5", 53)),
    ("[fd00::5]:5353", ("fd00::5", 5353)),
    ("dns.example:53", ValueError),
    ("10.1.2.3:70000", ValueError),
    ("10.1.2.3", ValueError),
])
def test_an_open_names_an_address_and_port(target: str, expected: tuple[str, int] | type) -> None:
    if expected is ValueError:
        with pytest.raises(ValueError):
            parse_target(target)
    else:
        assert parse_target(target) == expected


def test_a_datagrams_line_is_no_connect_line() -> None:
    with pytest.raises(ValueError, match="expected CONNECT"):
        parse_connect(b"DATAGRAMS")


@pytest.mark.parametrize("size", [1, 2, 5, 7, 1003, len(STREAM)])
def test_messages_parses_what_feed_and_parse_would(size: int) -> None:
    deframer = MessageDeframer()
    out: list[tuple[int, int, bytes]] = []
    for i in range(0, len(STREAM), size):
        out += deframer.messages(STREAM[i:i + size])
    assert out == MESSAGES and deframer.pending == 0


@pytest.mark.parametrize(("stream", "error"), [
    (b"\x00\x04\x02\x00\x00\x00", "shorter than its 5-byte header"),
    (b"\x00\x05\x08\x00\x00\x00\x01", "unknown message kind 8"),
])
def test_messages_names_a_broken_message(stream: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        MessageDeframer().messages(message(DATA, 1, b"ok") + stream)
