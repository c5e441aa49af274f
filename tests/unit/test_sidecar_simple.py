"""The simple shapes (sidecar/http1/simple.py): which requests and responses skip the parser, and that taking
that path changes nothing on the wire (the same bytes as the general path, whose first sight of a head is
never the memo's), with fake transports."""

from __future__ import annotations

from typing import Any

import pytest
from test_sidecar_fastpath import Spy
from test_sidecar_proxy import Rig

from sidecar import proxy
from sidecar.http1.simple import simple_request, simple_response

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture(autouse=True)
def fresh_cache():
    proxy._FAST_RESPONSES.clear()
    proxy._HEAD_CACHE.clear()
    yield
    proxy._FAST_RESPONSES.clear()
    proxy._HEAD_CACHE.clear()


def general_rig(monkeypatch: Any) -> Rig:
    """A rig whose connections never take the simple path (what the general path does with the same bytes)."""
    rig = Rig()
    rig.client.simple_shapes = False
    rig.up.simple_shapes = False
    return rig


# (request bytes, it skips the parser)
REQUESTS = [
    (b"GET / HTTP/1.1\r\nHost: web\r\n\r\n", True),
    (b"GET /a?b=1 HTTP/1.1\r\nHost: web\r\nUser-Agent: t\r\nAccept: */*\r\nX-Request-Id: 7\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\nhOsT: web  \r\nX-Empty: \r\nX-Tab: v\t\r\n\r\n", True),  # (Host keeps its trailing OWS)
    (b"GET / HTTP/1.1\r\nHost:web\r\n\r\n", False),  # (the general path writes "Host: web")
    (b"GET / HTTP/1.1\r\nHost: web\r\nX-A:  1\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\nHost: web\r\nX-A:\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", True),  # no Host
    (b"GET / HTTP/1.1\r\nHost: web\r\nHost: web\r\n\r\n", True),  # (the last Host counts, both are sent)
    (b"GET / HTTP/1.1\r\nHost: web\r\nCookie: " + b"c" * 3000 + b"\r\n\r\n", True),
    (b"DELETE /x HTTP/1.1\r\nHost: web\r\n\r\n", True),
    (b"POST /x HTTP/1.1\r\nHost: web\r\n\r\n", True),  # no framing header: no body
    (b"HEAD / HTTP/1.1\r\nHost: web\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\nHost: web\r\nX-Te: 1\r\nTE-X: 1\r\nHostname: h\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\nHost: web\r\nX-Obs: caf\xc3\xa9\r\n\r\n", True),  # obs-text in a value
    (b"POST /x HTTP/1.1\r\nHost: web\r\nContent-Length: 0\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\nHost: web\r\nConnection: keep-alive\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\nHost: web\r\nKeep-Alive: 5\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\nHost: web\r\nTE: trailers\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\nHost: web\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\nHost: web\r\nforwarded: for=1.1.1.1\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n", False),
    (b"GET / HTTP/1.0\r\nHost: web\r\n\r\n", False),
    (b"get / HTTP/1.1\r\nHost: web\r\n\r\n", False),
    (b"\r\nGET / HTTP/1.1\r\nHost: web\r\n\r\n", False),
    (b"POST /x HTTP/1.1\r\nHost: web\r\nContent-Length: 4\r\n\r\nabcd", False),
    (b"POST /x HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", False),
    (b"POST /x HTTP/1.1\r\nHost: web\r\nExpect: 100-continue\r\n\r\n", False),
    (b"GET /ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", False),
    (b"GET http://web/ HTTP/1.1\r\nHost: web\r\n\r\n", False),
    (b"OPTIONS * HTTP/1.1\r\nHost: web\r\n\r\n", False),
    (b"GET /1 HTTP/1.1\r\nHost: web\r\n\r\nGET /2 HTTP/1.1\r\nHost: web\r\n\r\n", False),  # pipelined
    (b"GET / HTTP/1.1\r\nHost: web\r\nX-A: 1\r\n  folded\r\n\r\n", False),  # obs-fold: 400
    (b"GET / HTTP/1.1\r\nHost: web\r\nX-A : 1\r\n\r\n", False),  # space before the colon: 400
    (b"GET / HTTP/1.1\r\nHost: web\r\nX-A: a\x00b\r\n\r\n", False),  # NUL: 400
    (b"GET / HTTP/1.1\r\nHost: web\r\nX-A: a\rb\r\n\r\n", False),  # bare CR: 400
    (b"GET / HTTP/1.1\nHost: web\n\n", False),  # bare LF line ends
    (b"GET / HTTP/1.1\r\nHost: web\r\nX(: 1\r\n\r\n", False),  # not a token: 400
    (b"GET / HTTP/1.1\r\nHost: web\r\n\r\nGET", False),
    (b"GET / HTTP/1.1\r\nHost: web\r\n", False),  # half a head
]


@pytest.mark.parametrize(("request_bytes", "simple"), REQUESTS)
async def test_which_requests_skip_the_parser_and_that_they_send_what_the_general_path_sends(
    request_bytes: bytes, simple: bool, monkeypatch: Any
):
    rig = Rig()
    spy = rig.client.parser = Spy(rig.client.parser)  # type: ignore[assignment]
    sent = rig.request(request_bytes)
    assert spy.fed == (0 if simple else 1)
    general = general_rig(monkeypatch)
    assert sent == general.request(request_bytes)
    assert rig.respond(OK) == general.respond(OK) and rig.ct.closed == general.ct.closed
    assert len(rig.client.queue) == len(general.client.queue)
    if not simple:
        return
    assert rig.svc.stats.requests == general.svc.stats.requests and rig.svc.stats.in_flight == 0
    assert rig.ep.idle[1] == [rig.up] and rig.ep.in_flight == 0
    # the parser is still between requests: a request for the general path next is parsed as new
    other = b"GET /next HTTP/1.1\r\nHost: web\r\nConnection: keep-alive\r\n\r\n"
    assert rig.request(other) == general.request(other) and spy.fed == 1


async def test_a_request_head_beyond_the_bounds_is_refused_as_by_the_general_path(monkeypatch: Any):
    big = b"GET / HTTP/1.1\r\nHost: web\r\nCookie: " + b"c" * 70000 + b"\r\n\r\n"
    many = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(500)) + b"\r\n"
    for data in (big, many):
        rig, general = Rig(), general_rig(monkeypatch)
        assert rig.request(data) == general.request(data) == b""
        assert rig.ct.take()[:12] == general.ct.take()[:12] == b"HTTP/1.1 431"


async def test_simple_requests_on_a_shared_listener_are_routed_by_host():
    import asyncio

    from meshd.model.endpoints import Endpoint, PortInfo, Reset, ServiceInfo, ServiceKey
    from sidecar.services import ServiceTable

    table = ServiceTable()
    ups = {}
    for name in ("web", "api"):
        key = ServiceKey("default", name)
        table.apply(Reset(ServiceInfo(key, None, (PortInfo("http", 80, "http"),)),
                          (Endpoint(f"{name}-0", "127.0.0.1", {"http": 1}),)))  # fmt: skip
        ep = table.services[key].endpoints[f"{name}-0"]
        up = proxy.UpstreamConnection(ep, 1)
        t = type(Rig().ut)()
        up.connection_made(t)
        ep.idle[1] = [up]
        ups[name] = (up, t)
    listener = proxy.Listener("127.0.0.1", 8080, routes=[proxy.Route(s, None) for s in table.services.values()])
    listener.loop = asyncio.get_running_loop()
    client = proxy.ClientConnection(listener)
    ct = type(Rig().ut)()
    client.connection_made(ct)
    for i, name in enumerate(("web", "api", "api", "web")):
        client.data_received(b"GET / HTTP/1.1\r\nHost: %s.default\r\nX-Id: %d\r\n\r\n" % (name.encode(), i))
        up, t = ups[name]
        assert t.take().startswith(b"GET / HTTP/1.1\r\nHost: %s.default\r\nX-Id: %d\r\n" % (name.encode(), i))
        up.data_received(OK)
        assert ct.take() == OK
    client.data_received(b"GET / HTTP/1.1\r\nHost: nope\r\nX-Id: 9\r\n\r\n")
    assert ct.take().startswith(b"HTTP/1.1 404")  # the general path answers what cannot be routed


OK_NGINX = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 05 Dec 2026 08:40:00 GMT\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 3\r\nConnection: keep-alive\r\nX-Request-Id: 3f0c2a9b\r\n\r\nhi\n"
)
# (response bytes to a GET, it skips the parser)
RESPONSES = [
    (OK, True),
    (OK_NGINX, True),
    (b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\nX-A: b\r\n\r\n", True),
    (b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok", True),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\nconnection: Keep-Alive\r\n\r\nok", True),
    (b"HTTP/1.1 200 OK\r\nKeep-Alive: 1\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok", True),
    (b"HTTP/1.1 200 OK\r\nContent-Length:  002 \r\n\r\nok", True),
    (b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", True),  # no reason phrase
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Obs: caf\xc3\xa9\r\n\r\nok", True),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n  folded\r\n\r\nok", False),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", False),
    (b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-P\r\nX-P: 1\r\nContent-Length: 2\r\n\r\nok", False),
    (b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: keep-alive\r\nConnection: keep-alive\r\n"
     b"Content-Length: 2\r\n\r\nok", False),  # (more than two lines to drop: the general path)
    (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", False),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", False),
    (b"HTTP/1.1 200 OK\r\n\r\nok", False),  # close-delimited
    (b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", False),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 2\r\n\r\n", False),
    (b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno", False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no", False),  # the body in pieces
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n", False),  # more than one response
    (b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", False),
    (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", False),  # bare LF (the general path is lenient)
    (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
]


@pytest.mark.parametrize(("response", "simple"), RESPONSES)
async def test_which_responses_skip_the_parser_and_that_they_send_what_the_general_path_sends(
    response: bytes, simple: bool, monkeypatch: Any
):
    req = b"GET / HTTP/1.1\r\nHost: web\r\nX-Request-Id: 1\r\n\r\n"
    rig = Rig()
    rig.request(req)
    spy = rig.up.parser = Spy(rig.up.parser)  # type: ignore[assignment]
    out = rig.respond(response)
    assert spy.fed == (0 if simple else 1)
    if simple:
        assert not proxy._FAST_RESPONSES and not proxy._HEAD_CACHE  # (nothing learnt, nothing cached)
    general = general_rig(monkeypatch)
    general.request(req)
    assert out == general.respond(response)
    assert (rig.ct.closed, rig.up.closed, len(rig.client.queue)) == (
        general.ct.closed, general.up.closed, len(general.client.queue)
    )  # fmt: skip
    assert rig.svc.stats.requests == general.svc.stats.requests
    assert rig.ep.outcomes == general.ep.outcomes
    assert sum(rig.svc.stats.buckets) == sum(general.svc.stats.buckets)
    if simple:
        assert rig.ep.idle[1] == [rig.up] and rig.ep.in_flight == 0 and not rig.client.queue


@pytest.mark.parametrize(
    ("data", "parts"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", (b"GET", b"a")),
        (b"PATCH /p?q HTTP/1.1\r\nX: y\r\nhost: h:1\r\n\r\n", (b"PATCH", b"h:1")),
        (b"GET / HTTP/1.1\r\nX: y\r\n\r\n", (b"GET", None)),
    ],
)
def test_simple_request_gives_the_method_and_host(data: bytes, parts: tuple[bytes, bytes | None]):
    assert simple_request(data) == parts


def test_simple_response_drops_the_keep_alive_lines_and_nothing_else():
    assert simple_response(OK_NGINX) == (200, OK_NGINX.replace(b"Connection: keep-alive\r\n", b""), 3)
    assert simple_response(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") == (
        200, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0
    )  # fmt: skip
    assert simple_response(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n") is None


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: shop.example\r\nX-Id: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Id: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-Proto: http\r\n\r\n",  # (the edge's to say)
        b"GET / HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-Host: evil\r\n\r\n",
    ],
)
async def test_an_edge_listener_adds_its_forwarding_headers_as_the_general_path(data: bytes):
    sent = []
    for simple in (True, False):
        rig = Rig()
        rig.listener.forwarded_proto = b"https"
        rig.client.simple_shapes = simple
        sent.append(rig.request(data))
    assert sent[0] == sent[1] and b"X-Forwarded-Proto: https\r\n" in sent[0]
    assert b"X-Forwarded-Host: evil" not in sent[0]


async def test_a_client_whose_host_changes_gets_forwarding_headers_for_each():
    rig = Rig()
    for host in (b"a", b"b", b"a"):
        sent = rig.request(b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host)
        assert sent.endswith(b'Forwarded: for=10.1.2.3;proto=http;host="%s"\r\n\r\n' % host)
        rig.respond(OK)


async def test_simple_heads_that_repeat_are_learnt_by_the_memo_and_heads_that_vary_stop_the_learning():
    rig = Rig()
    req = b"GET / HTTP/1.1\r\nHost: web\r\n\r\n"
    head = OK_NGINX[: OK_NGINX.find(b"\r\n\r\n") + 2]
    first = [rig.request(req), rig.respond(OK_NGINX)]
    assert req in rig.client.fast and head not in proxy._FAST_RESPONSES  # (a response head: once is not enough)
    assert [rig.request(req), rig.respond(OK_NGINX)] == first
    assert proxy._FAST_RESPONSES[head] == (first[1][:-3], 3, 200)
    assert [rig.request(req), rig.respond(OK_NGINX)] == first and rig.client.unrepeated == 0  # (from the memo)
    for i in range(proxy.FAST_REQUESTS_PER_CONNECTION + 1):
        sent = rig.request(b"GET / HTTP/1.1\r\nHost: web\r\nX-Request-Id: %d\r\n\r\n" % i)
        assert sent.startswith(b"GET / HTTP/1.1\r\nHost: web\r\nX-Request-Id: %d\r\nX-Forwarded-For: " % i)
        rig.respond(OK_NGINX.replace(b"3f0c2a9b", b"%08d" % i))
    assert not rig.client.learning and len(rig.client.fast) <= proxy.FAST_REQUESTS_PER_CONNECTION
    assert rig.request(req) == first[0]  # (what it learnt before still answers)


async def test_an_upstream_whose_heads_never_repeat_skips_the_memo_and_answers_the_same():
    from sidecar.http1.upstream import VARYING_RESPONSES

    rig, general = Rig(), general_rig(None)
    req = b"GET / HTTP/1.1\r\nHost: web\r\n\r\n"
    for i in range(VARYING_RESPONSES + 3):
        response = OK_NGINX.replace(b"3f0c2a9b", b"%08d" % i)
        rig.request(req)
        general.request(req)
        assert rig.respond(response) == general.respond(response)
    assert rig.up.unrepeated >= VARYING_RESPONSES and not proxy._FAST_RESPONSES
    # a head the memo would know is not looked up any more; the simple path gives the same bytes
    proxy._FAST_RESPONSES[OK_NGINX[: OK_NGINX.find(b"\r\n\r\n") + 2]] = (b"wrong", 3, 200)
    rig.request(req)
    assert rig.respond(OK_NGINX) == OK_NGINX.replace(b"Connection: keep-alive\r\n", b"")
    # responses outside the simple shape still take the general path
    rig.request(req)
    general.request(req)
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    assert rig.respond(chunked) == general.respond(chunked)
    assert rig.ep.idle[1] == [rig.up] and not rig.client.queue
