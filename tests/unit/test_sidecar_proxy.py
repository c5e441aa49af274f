"""The proxy's byte-level behaviour with fake transports (no sockets): framing, header rewriting, ordering."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from meshd.model.endpoints import Endpoint, PortInfo, Reset, ServiceInfo, ServiceKey
from sidecar.proxy import ClientConnection, Listener, Route, UpstreamConnection
from sidecar.services import ServiceTable


class FakeTransport:
    def __init__(self) -> None:
        self.data = b""
        self.closed = False
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.data += data

    def take(self) -> bytes:
        data, self.data = self.data, b""
        return data

    def set_write_buffer_limits(self, high: int | None = None) -> None:
        pass

    def get_extra_info(self, key: str, default: Any = None) -> Any:
        return ("10.1.2.3", 40000) if key == "peername" else default

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


class Rig:
    """One client connection in front of one endpoint with one pooled upstream connection."""

    def __init__(self) -> None:
        table = ServiceTable()
        key = ServiceKey("default", "web")
        table.apply(
            Reset(
                ServiceInfo(key, None, (PortInfo("http", 80, "http"),)),
                (Endpoint("b0", "127.0.0.1", {"http": 1}),),
            )
        )
        self.svc = table.services[key]
        self.listener = Listener("127.0.0.1", 8080, routes=[Route(self.svc, None)])
        self.listener.loop = asyncio.get_running_loop()
        self.ep = self.svc.endpoints["b0"]
        self.up = UpstreamConnection(self.ep, 1)
        self.ut = FakeTransport()
        self.up.connection_made(self.ut)
        self.ep.idle[1] = [self.up]
        self.client = ClientConnection(self.listener)
        self.ct = FakeTransport()
        self.client.connection_made(self.ct)

    def request(self, data: bytes) -> bytes:
        """Client bytes in; what the endpoint received out."""
        self.client.data_received(data)
        return self.ut.take()

    def respond(self, data: bytes) -> bytes:
        """Endpoint bytes in; what the client received out."""
        self.up.data_received(data)
        return self.ct.take()


@pytest.fixture
async def rig() -> Rig:
    return Rig()


async def test_request_head_rewritten(rig: Rig):
    sent = rig.request(
        b"GET /a?b=1 HTTP/1.1\r\nHost: web\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\n"
        b"TE: trailers\r\nX-Forwarded-For: 1.1.1.1\r\nUser-Agent: t\r\n\r\n"
    )
    head = sent.decode()
    assert head.startswith("GET /a?b=1 HTTP/1.1\r\nHost: web\r\n")
    for gone in ("X-Hop", "Keep-Alive", "TE:", "Connection"):
        assert gone not in head
    assert "X-Forwarded-For: 1.1.1.1, 10.1.2.3\r\n" in head
    assert 'Forwarded: for=10.1.2.3;proto=http;host="web"\r\n' in head and "User-Agent: t\r\n" in head


async def test_response_head_keeps_end_to_end_headers_and_drops_hop_by_hop(rig: Rig):
    rig.request(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
    out = rig.respond(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Private\r\nX-Private: 1\r\nKeep-Alive: timeout=5\r\n"
        b"Content-Length: 2\r\nX-App: yes\r\n\r\nok"
    )
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-App: yes\r\n\r\nok"
    assert rig.ep.idle[1] == [rig.up] and rig.ep.in_flight == 0  # back in the pool


async def test_close_delimited_response_is_rechunked_for_http11_and_closed_for_http10(rig: Rig):
    rig.request(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
    out = rig.respond(b"HTTP/1.0 200 OK\r\nX-A: 1\r\n\r\nabc")
    assert out == b"HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    rig.up.connection_lost(None)  # the end of a close-delimited body
    assert rig.ct.take() == b"0\r\n\r\n" and not rig.ct.closed

    rig2 = Rig()
    rig2.request(b"GET / HTTP/1.0\r\n\r\n")
    out = rig2.respond(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert out == b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc" and rig2.ct.closed


async def test_informational_responses_are_skipped_and_head_has_no_body(rig: Rig):
    rig.request(b"HEAD /x HTTP/1.1\r\nHost: web\r\n\r\n")
    out = rig.respond(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
    )
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
    assert rig.ep.idle[1] == [rig.up]
    # the same upstream connection serves the next request correctly
    assert rig.request(b"GET /y HTTP/1.1\r\nHost: web\r\n\r\n").startswith(b"GET /y ")
    assert rig.respond(b"HTTP/1.1 204 No Content\r\n\r\n") == b"HTTP/1.1 204 No Content\r\n\r\n"


async def test_pipelined_requests_wait_their_turn(rig: Rig):
    sent = rig.request(b"GET /1 HTTP/1.1\r\nHost: web\r\n\r\nGET /2 HTTP/1.1\r\nHost: web\r\n\r\n")
    assert sent.startswith(b"GET /1 ") and b"GET /2" not in sent
    out = rig.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"
    assert rig.ut.take().startswith(b"GET /2 ")  # the second went out only after the first was answered
    assert rig.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2").endswith(b"\r\n\r\n2")


async def test_connection_close_request_and_chunked_request_body(rig: Rig):
    sent = rig.request(
        b"POST /e HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    )
    assert sent.endswith(b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    out = rig.respond(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    assert out == b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    assert rig.ct.closed


async def test_upstream_cut_before_the_head_is_a_502_for_post(rig: Rig):
    rig.request(b"POST /e HTTP/1.1\r\nHost: web\r\nContent-Length: 2\r\n\r\nhi")
    rig.up.connection_lost(ConnectionResetError())
    out = rig.ct.take()
    assert out.startswith(b"HTTP/1.1 502 Bad Gateway") and b"before responding" in out  # POST: never retried


async def test_upstream_cut_after_the_head_closes_the_client(rig: Rig):
    rig.request(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
    assert rig.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345").endswith(b"12345")
    rig.up.connection_lost(None)
    assert rig.ct.closed


async def test_bad_request_and_connect(rig: Rig):
    rig.client.data_received(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    assert rig.ct.take().startswith(b"HTTP/1.1 405") and rig.ct.closed
    rig2 = Rig()
    rig2.client.data_received(b"NOT HTTP AT ALL\r\n\r\n")
    assert rig2.ct.take().startswith(b"HTTP/1.1 400") and rig2.ct.closed


async def test_a_request_arriving_byte_by_byte(rig: Rig):
    request = b"GET /abcdef?x=1 HTTP/1.1\r\nHost: web\r\nX-Long-Header: " + b"v" * 100 + b"\r\n\r\n"
    sent = b"".join(rig.request(request[i : i + 1]) for i in range(len(request)))
    assert sent.startswith(b"GET /abcdef?x=1 HTTP/1.1\r\nHost: web\r\nX-Long-Header: " + b"v" * 100 + b"\r\n")
    assert rig.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").startswith(b"HTTP/1.1 200 OK")
