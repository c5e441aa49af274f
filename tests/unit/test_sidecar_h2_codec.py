"""The two HTTP/2 codecs behind one interface (sidecar/h2/events.py): a client and a server codec of the
same kind talk in memory, and each says the same events for the same exchange."""

from __future__ import annotations

import pytest

from sidecar.h2.events import DATA, END, GOAWAY, HEADERS, RESET, SETTINGS, TRAILERS, CodecError
from sidecar.h2.h2codec import H2Codec

KINDS = ["h2"]
try:
    from sidecar.h2.native import NativeConnection

    KINDS.insert(0, "native")
except ImportError:  # pragma: no cover - CI builds it
    NativeConnection = None  # type: ignore[assignment,misc]

REQUEST = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"echo"), (b":path", b"/test.Echo/Unary"),
           (b"content-type", b"application/grpc"), (b"te", b"trailers")]  # fmt: skip


def pair(kind: str):  # type: ignore[no-untyped-def]
    make = NativeConnection if kind == "native" else H2Codec
    client, server = make(client=True), make(client=False)
    client.start(window=1 << 20, conn_window=(1 << 31) - 1)
    server.start(window=1 << 20, conn_window=(1 << 31) - 1, max_streams=256)
    return client, server


def pump(src, dst) -> list:  # type: ignore[no-untyped-def]
    return [e for e in dst.receive(src.data_to_send()) if e[0] != SETTINGS and e[0] != 5]


@pytest.mark.parametrize("kind", KINDS)
def test_request_body_trailers_and_response_pass_intact(kind: str):
    client, server = pair(kind)
    sid = client.send_request(REQUEST, end=False)
    client.send_data(sid, b"\x00\x00\x00\x00\x03abc")
    got = pump(client, server)
    pump(server, client)  # (SETTINGS ACKs)
    assert got[0][:2] == (HEADERS, sid) and got[0][2] == REQUEST and got[0][3] == 0
    assert got[1] == (DATA, sid, b"\x00\x00\x00\x00\x03abc", 8)
    client.end_stream(sid)
    assert pump(client, server) == [(END, sid, None, 0)]
    server.send_headers(sid, [(b":status", b"200"), (b"content-type", b"application/grpc")], end=False)
    server.send_data(sid, b"x" * 100_000)  # more than one frame
    server.send_headers(sid, [(b"grpc-status", b"0")], end=True)  # trailers behind the data
    events = pump(server, client)
    assert events[0] == (HEADERS, sid, [(b":status", b"200"), (b"content-type", b"application/grpc")], 0)
    body = b"".join(e[2] for e in events if e[0] == DATA)
    assert body == b"x" * 100_000
    assert events[-1] == (TRAILERS, sid, [(b"grpc-status", b"0")], 1)


@pytest.mark.parametrize("kind", KINDS)
def test_flow_control_window_and_ack(kind: str):
    client, server = pair(kind)
    sid = client.send_request(REQUEST[:4], end=True)
    pump(client, server)
    pump(server, client)
    pump(client, server)
    assert server.window(sid) == 1 << 20  # the window the client advertised
    server.send_headers(sid, [(b":status", b"200")], end=False)
    server.send_data(sid, b"y" * (1 << 20))
    assert server.window(sid) == 0
    events = pump(server, client)
    assert sum(e[3] for e in events if e[0] == DATA) == 1 << 20
    client.ack(sid, 1 << 20)
    pump(client, server)
    assert server.window(sid) == 1 << 20


@pytest.mark.parametrize("kind", KINDS)
def test_reset_and_graceful_goaway(kind: str):
    client, server = pair(kind)
    one = client.send_request(REQUEST[:4], end=True)
    two = client.send_request(REQUEST[:4], end=True)
    pump(client, server)
    client.reset(one, 8)
    assert (RESET, one, None, 8) in pump(client, server)
    server.goaway()
    events = pump(server, client)
    assert (GOAWAY, two, None, 0) in events
    server.send_headers(two, [(b":status", b"204")], end=True)  # a stream before GOAWAY finishes
    assert (HEADERS, two, [(b":status", b"204")], 1) in pump(server, client)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("garbage", [b"\x00\x00\x04\x04\x00\x00\x00\x00\x01abcd", b"not a frame " * 8])
def test_a_broken_client_gets_goaway_with_an_error(kind: str, garbage: bytes):
    _, server = pair(kind)
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    try:
        server.receive(preface + garbage)
        out = server.data_to_send()
        assert server.failed() is not None
    except CodecError as e:
        server.goaway(e.error_code, str(e).encode())
        out = server.data_to_send()
    frames = []
    while len(out) >= 9:
        n = int.from_bytes(out[:3], "big")
        frames.append((out[3], out[9 : 9 + n]))
        out = out[9 + n :]
    goaway = [p for t, p in frames if t == 7]
    assert goaway and int.from_bytes(goaway[-1][4:8], "big") in (1, 6)
