"""The proxy's byte-level behaviour with fake transports (no sockets): framing, header rewriting, ordering."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from meshd.model.endpoints import Endpoint, PortInfo, Reset, ServiceInfo, ServiceKey
from sidecar import proxy
from sidecar.accept import may_accept
from sidecar.http1 import exchange as exchange_module
from sidecar.http1 import wire
from sidecar.proxy import ClientConnection, Listener, Route, UpstreamConnection
from sidecar.retry import may_retry
from sidecar.services import ServiceTable


class FakeTransport:
    def __init__(self, *, half_close: bool = False) -> None:
        self.data = b""
        self.closed = False
        self.reading = True
        self.half_close = half_close  # can_write_eof: refused clients get a lingering close
        self.eof_written = False

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

    def can_write_eof(self) -> bool:
        return self.half_close

    def write_eof(self) -> None:
        self.eof_written = True

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


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\n\nhello\n",  # busybox httpd + a CGI script
        b"HTTP/1.1 200 OK\nContent-Type: text/plain\n\nhello\n",
        b"HTTP/1.1 103 Early Hints\nLink: </a>\n\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello\n",
    ],
)
@pytest.mark.parametrize("split", [0, 5, 20, 40])
async def test_bare_lf_response_heads_are_accepted_and_forwarded_with_crlf(
    rig: Rig, response: bytes, split: int
):
    rig.request(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
    out = rig.respond(response[:split]) if split else b""
    out += rig.respond(response[split:])
    rig.up.connection_lost(None)  # framed by close
    out += rig.ct.take()
    assert out == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello\n\r\n0\r\n\r\n"
    )


async def test_a_bad_response_after_the_lenient_retry_is_still_a_502(rig: Rig):
    rig.request(b"POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 0\r\n\r\n")  # (not retried)
    out = rig.respond(b"HTTP/1.1 200 OK\nBad Header\n\n")
    assert out.startswith(b"HTTP/1.1 502") and b"invalid response" in out


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: web\r\nX-A: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: web\r\n" + b"X: 1\r\n" * 101 + b"\r\n", 431),
        (b"POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"\x00\x01\x02 garbage\r\n\r\n", 400),
    ],
)
async def test_refused_requests_reach_no_endpoint_and_linger_before_close(data: bytes, status: int):
    rig = Rig()
    rig.client.transport = rig.ct = FakeTransport(half_close=True)
    rig.client.out = proxy.Writer(rig.ct)
    sent = rig.request(data[:30000]) + rig.request(data[30000:])
    assert sent == b""
    assert rig.ct.take().startswith(b"HTTP/1.1 %d" % status) and rig.ct.eof_written and not rig.ct.closed
    assert rig.request(b"more bytes, dropped") == b"" and rig.ct.take() == b""
    for _ in range(proxy.LINGER_SECONDS):
        rig.client.idle_tick(rig.listener.options, 0.0)
    assert rig.ct.closed


async def test_a_slow_request_head_gets_408_however_busy_the_client_keeps_it(rig: Rig):
    rig.request(b"GET / HTTP/1.1\r\nHo")
    since = rig.client.head_since
    assert since > 0
    for i in range(10):
        rig.request(b"s")  # a byte a second: never quiet
        rig.client.idle_tick(rig.listener.options, since + i)
    assert rig.ct.take() == b""
    rig.client.idle_tick(rig.listener.options, since + rig.listener.options.header_timeout)
    out = rig.ct.take()
    assert out.startswith(b"HTTP/1.1 408") and rig.ct.closed


@pytest.mark.parametrize(
    ("active", "pending", "limit", "ok"),
    [(0, 0, 1, True), (4, 0, 5, True), (5, 0, 5, False), (3, 2, 5, False), (6, 0, 5, False)],
)
def test_may_accept(active: int, pending: int, limit: int, ok: bool):
    assert may_accept(active=active, pending=pending, limit=limit) is ok


# (status, method, http10, chunked, length, upgrade, keep_alive) -> (mode, extra header lines, open, eof_body)
FRAMING = [
    ((200, b"GET", False, False, True, False, True), (wire.R_LENGTH, b"", True, False)),
    (
        (200, b"GET", False, True, False, False, True),
        (wire.R_CHUNKED, b"Transfer-Encoding: chunked\r\n", True, False),
    ),
    (
        (200, b"GET", False, False, False, False, True),
        (wire.R_CHUNKED, b"Transfer-Encoding: chunked\r\n", True, True),
    ),
    ((200, b"GET", True, False, False, False, True), (wire.R_CLOSE, b"Connection: close\r\n", False, True)),
    ((200, b"GET", True, True, False, False, True), (wire.R_CLOSE, b"Connection: close\r\n", False, False)),
    (
        (200, b"GET", True, False, True, False, True),
        (wire.R_LENGTH, b"Connection: keep-alive\r\n", True, False),
    ),
    ((200, b"HEAD", False, False, False, False, True), (wire.R_NONE, b"", True, False)),
    ((304, b"GET", False, False, False, False, True), (wire.R_NONE, b"", True, False)),
    ((204, b"GET", False, False, False, False, False), (wire.R_NONE, b"Connection: close\r\n", False, False)),
    ((101, b"GET", False, False, False, True, True), (wire.R_NONE, b"Connection: upgrade\r\n", True, False)),
    ((200, b"GET", False, False, True, True, True), (wire.R_LENGTH, b"Connection: close\r\n", False, False)),
]


@pytest.mark.parametrize(("given", "expected"), FRAMING)
def test_frame_response(given: tuple, expected: tuple):
    status, method, http10, chunked, length, upgrade, keep_alive = given
    got = wire.frame_response(
        status=status, method=method, http10=http10, chunked=chunked, length=length, upgrade=upgrade,
        keep_alive=keep_alive,
    )  # fmt: skip
    assert got == expected


COMPILED = not (exchange_module.__file__ or "").endswith(".py")  # (the mypyc build: see sidecar/compiled.py)


@pytest.mark.skipif(COMPILED, reason="compiled modules call retry.may_retry natively: nothing to monkeypatch "
                    "(CI runs the sidecar's unit tests once with MESHD_MYPYC=0 too)")  # fmt: skip
@pytest.mark.parametrize(("rule_says", "retried"), [(True, True), (False, False)])
async def test_retry_rule_that_runs_is_retry_may_retry(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, rule_says: bool, retried: bool
):
    seen: list[dict[str, Any]] = []

    def rule(**kwargs: Any) -> bool:
        seen.append(kwargs)
        return rule_says

    monkeypatch.setattr(exchange_module, "may_retry", rule)
    rig.request(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
    out = rig.respond(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")
    assert seen == [{"method": b"GET", "status": 503, "connect_failed": False, "replayable": True}]
    assert (out == b"") is retried  # retried: the client waits for the next attempt; else it gets the 503
    if retried:
        rig.client.queue[0].abort()


@pytest.mark.parametrize(
    ("method", "status"),
    [(b"GET", 503), (b"GET", 502), (b"HEAD", 504), (b"PUT", 503), (b"GET", 500), (b"GET", 404), (b"POST", 503)],
)
async def test_a_response_is_retried_when_retry_may_retry_says_so(rig: Rig, method: bytes, status: int):
    """The same as above by behaviour only, so it holds for the compiled build as well."""
    says = may_retry(method=method, status=status, connect_failed=False, replayable=True)
    rig.request(method + b" / HTTP/1.1\r\nHost: web\r\nContent-Length: 0\r\n\r\n")
    out = rig.respond(b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % status)
    assert (out == b"") is says, out  # retried: the client waits for the next attempt; else it gets the answer
    if says:
        rig.client.queue[0].abort()
