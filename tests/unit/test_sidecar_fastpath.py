"""The proxy's fast paths (sidecar/proxy.py): which requests and responses qualify, and that taking them
changes nothing on the wire (the same bytes as the general path), with fake transports."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
from test_sidecar_proxy import Rig

from sidecar import proxy


class Spy:
    """Stands in for a parser: counts what it is fed and passes it on."""

    def __init__(self, parser: Any) -> None:
        self.parser = parser
        self.fed = 0

    def feed_data(self, data: bytes) -> None:
        self.fed += 1
        self.parser.feed_data(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.parser, name)


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture(autouse=True)
def memo_alone(monkeypatch: Any):
    """These tests are about the memo of exact heads: the simple shapes (test_sidecar_simple.py) are off in
    every Rig (the requests and responses of these tables are mostly of the simple shape)."""
    init = Rig.__init__

    def without_simple_shapes(self: Rig) -> None:
        init(self)
        self.client.simple_shapes = False
        self.up.simple_shapes = False

    monkeypatch.setattr(Rig, "__init__", without_simple_shapes)


@pytest.fixture(autouse=True)
def fresh_cache():
    proxy._FAST_RESPONSES.clear()
    proxy._HEAD_CACHE.clear()
    yield
    proxy._FAST_RESPONSES.clear()
    proxy._HEAD_CACHE.clear()


# (request bytes, the fast path may repeat it)
REQUESTS = [
    (b"GET / HTTP/1.1\r\nHost: web\r\n\r\n", True),
    (b"GET /a?b=1 HTTP/1.1\r\nHost: web\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\nHost: web\r\nConnection: keep-alive\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\nHost: web\r\ncOnNeCtIoN: Keep-Alive\r\n\r\n", True),
    ((b"GET / HTTP/1.1\r\nHost: web\r\n"
     b"Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nTE: trailers\r\n\r\n"), True),
    (b"GET / HTTP/1.1\r\nHost: web\r\nX-Forwarded-For: 1.1.1.1\r\nForwarded: for=1.1.1.1\r\n\r\n", True),
    (b"DELETE /x HTTP/1.1\r\nHost: web\r\n\r\n", True),
    (b"POST /x HTTP/1.1\r\nHost: web\r\nContent-Length: 0\r\n\r\n", True),
    (b"HEAD / HTTP/1.1\r\nHost: web\r\n\r\n", True),  # (its response never takes the fast path)
    (b"\r\nGET / HTTP/1.1\r\nHost: web\r\n\r\n", True),  # a stray CRLF before the request line
    (b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n", False),
    (b"GET / HTTP/1.0\r\nHost: web\r\n\r\n", False),
    (b"GET / HTTP/1.0\r\nHost: web\r\nConnection: keep-alive\r\n\r\n", False),
    (b"POST /x HTTP/1.1\r\nHost: web\r\nContent-Length: 4\r\n\r\nabcd", False),
    (b"POST /x HTTP/1.1\r\nHost: web\r\nContent-Length: 4\r\n\r\n\r\n\r\n", False),  # a body of CRLFs
    (b"POST /x HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", False),
    (b"POST /x HTTP/1.1\r\nHost: web\r\ntransfer-encoding: CHUNKED\r\n\r\n4\r\nabcd\r\n0\r\n\r\n", False),
    (b"POST /x HTTP/1.1\r\nHost: web\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n", False),
    (b"GET /ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", False),
    (b"GET http://web/ HTTP/1.1\r\nHost: web\r\n\r\n", False),  # absolute-form: rewritten, checked each time
    (b"OPTIONS * HTTP/1.1\r\nHost: web\r\n\r\n", False),
    (b"GET /1 HTTP/1.1\r\nHost: web\r\n\r\nGET /2 HTTP/1.1\r\nHost: web\r\n\r\n", False),  # pipelined
    (b"GET / HTTP/1.1\r\nHost: web\r\nX-A: 1\r\n  folded\r\n\r\n", False),  # obs-fold
    (b"GET / HTTP/1.1\r\nHost: web\r\nContent-Length: 0\r\nContent-Length: 1\r\n\r\n", False),  # 400
    (b"GET / HTTP/1.1\r\nHost: web\r\nCookie: " + b"c" * 1000 + b"\r\n\r\n", False),  # too big to keep
    (b"CONNECT web:80 HTTP/1.1\r\nHost: web:80\r\n\r\n", False),  # 405
    (b"GET / HTTP/1.1\nHost: web\n\n", False),  # bare LF line ends
]


@pytest.mark.parametrize(("request_bytes", "qualifies"), REQUESTS)
async def test_which_requests_the_fast_path_repeats(request_bytes: bytes, qualifies: bool):
    rig = Rig()
    first = rig.request(request_bytes)
    assert (request_bytes in (rig.client.fast or {})) is qualifies
    if not qualifies:
        return
    rig.respond(OK)
    spy = rig.client.parser = Spy(rig.client.parser)  # type: ignore[assignment]
    again = rig.request(request_bytes)
    assert spy.fed == 0  # the fast path: the parser saw nothing
    assert again == first  # ... and the endpoint got the same head
    rig.respond(OK)
    other = rig.request(b"GET /other HTTP/1.1\r\nHost: web\r\nX-New: 1\r\n\r\n")  # (parser: between requests)
    assert other.startswith(b"GET /other HTTP/1.1\r\n") and spy.fed == 1


BLOCK = b"Host: web\r\nUser-Agent: t\r\nConnection: keep-alive\r\n\r\n"

# (another request line before a header block learnt on this connection, the fast path may pair them)
REQUEST_LINES = [
    (b"GET /b?x=1&y=%20 HTTP/1.1\r\n", True),
    (b"GET / HTTP/1.1\r\n", True),
    (b"HEAD /b HTTP/1.1\r\n", True),
    (b"POST /b HTTP/1.1\r\n", True),  # (no Content-Length, no Transfer-Encoding: no body)
    (b"DELETE /b/c;d=e HTTP/1.1\r\n", True),
    (b"CONNECT /b HTTP/1.1\r\n", False),
    (b"get /b HTTP/1.1\r\n", False),
    (b"GET http://web/b HTTP/1.1\r\n", False),
    (b"GET * HTTP/1.1\r\n", False),
    (b"GET /b HTTP/1.0\r\n", False),
    (b"GET /a b HTTP/1.1\r\n", False),
    (b"GET /<x> HTTP/1.1\r\n", False),
    (b"GET /\xc3\xa4 HTTP/1.1\r\n", False),
    (b"GET /\x7f HTTP/1.1\r\n", False),
    (b"GET  /b HTTP/1.1\r\n", False),
    (b"\r\nGET /b HTTP/1.1\r\n", False),
]


@pytest.mark.parametrize(("line", "pairs"), REQUEST_LINES)
async def test_which_request_lines_the_fast_path_pairs_with_a_known_header_block(line: bytes, pairs: bool):
    rig = Rig()
    rig.request(b"GET /a HTTP/1.1\r\n" + BLOCK)
    rig.respond(OK)
    spy = rig.client.parser = Spy(rig.client.parser)  # type: ignore[assignment]
    sent = rig.request(line + BLOCK)
    assert spy.fed == (0 if pairs else 1)
    if not pairs:
        return
    general = Rig()  # what the general path sends for it
    assert sent == general.request(line + BLOCK)
    assert rig.respond(OK) == general.respond(OK) and rig.client.queue == general.client.queue == deque()
    assert rig.request(line + BLOCK) == sent and spy.fed == 0  # (now known as a whole)


async def test_a_repeated_request_is_not_fast_while_one_is_in_progress_or_the_parser_is_mid_request():
    rig = Rig()
    req = b"GET / HTTP/1.1\r\nHost: web\r\n\r\n"
    rig.request(req)
    rig.respond(OK)
    spy = rig.client.parser = Spy(rig.client.parser)  # type: ignore[assignment]
    rig.request(req)  # fast
    rig.request(req)  # pipelined behind it: the general path
    assert spy.fed == 1
    rig.respond(OK)
    rig.respond(OK)
    rig.request(b"GET /x HT")  # half a request ...
    assert rig.request(b"TP/1.1\r\nHost: web\r\n\r\n" + req)  # ... then its end and a whole one: general
    assert spy.fed == 3


async def test_the_fast_path_is_off_once_the_connection_is_closing():
    rig = Rig()
    req = b"GET / HTTP/1.1\r\nHost: web\r\n\r\n"
    rig.request(req)
    rig.respond(OK)
    rig.client.closing = True
    rig.client.fast = None  # (what Listener.stop does)
    spy = rig.client.parser = Spy(rig.client.parser)  # type: ignore[assignment]
    rig.request(req)
    assert spy.fed == 1
    assert rig.respond(OK).endswith(b"Connection: close\r\n\r\nok") and rig.ct.closed


# (response bytes to a GET, what the fast path learns: (status, Content-Length) or None for "never")
RESPONSES = [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", (200, 2)),
    (b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\nX-A: b\r\n\r\n", (201, 0)),
    ((b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n"
     b"Keep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok"), (200, 2)),
    (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", (200, 2)),
    (b"HTTP/1.1 200 OK\r\nContent-Length:  002 \r\n\r\nok", (200, 2)),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", None),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n  folded\r\n\r\nok", None),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", None),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", None),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", None),
    (b"HTTP/1.1 200 OK\r\n\r\nok", None),  # close-delimited
    (b"HTTP/1.1 204 No Content\r\n\r\n", None),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 2\r\n\r\n", None),
    (b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno", None),
    (b"HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\nno", None),
    ((b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), (200, 2)),
]


def head_of(response: bytes) -> bytes:
    start = response.rfind(b"HTTP/1.")
    return response[start : response.find(b"\r\n\r\n", start) + 2]


@pytest.mark.parametrize(("response", "learned"), RESPONSES)
async def test_which_responses_the_fast_path_repeats(response: bytes, learned: tuple[int, int] | None):
    rig = Rig()
    req = b"GET / HTTP/1.1\r\nHost: web\r\n\r\n"
    rig.request(req)
    first = rig.respond(response)
    assert head_of(response) not in proxy._FAST_RESPONSES  # a head seen once is not learnt: it may never repeat
    if rig.ct.closed or rig.up.closed or rig.client.queue:  # (it ends its connection, or is not over)
        assert learned is None
        return
    rig.request(req)
    assert rig.respond(response) == first
    entry = proxy._FAST_RESPONSES.get(head_of(response))
    assert (entry and (entry[2], entry[1])) == learned
    if learned is None or rig.ct.closed:
        return
    spy = rig.up.parser = Spy(rig.up.parser)  # type: ignore[assignment]
    rig.request(req)  # (fast too: the same request)
    again = rig.respond(response)
    assert again == first  # the same bytes to the client ...
    fast = not response.startswith(b"HTTP/1.1 103")  # (a 1xx first: the general path)
    assert spy.fed == (0 if fast else 1)
    assert rig.ep.idle[1] == [rig.up] and rig.ep.in_flight == 0 and not rig.client.queue
    requests = rig.svc.stats.requests[0]  # GET
    assert sum(requests) == 3 and requests[learned[0] // 100 - 1] == 3
    assert rig.ep.outcomes[0] == 3  # success, counted for outlier detection
    assert rig.svc.stats.in_flight == 0 and sum(rig.svc.stats.buckets) == 3


async def test_a_response_in_pieces_or_with_extra_bytes_takes_the_general_path():
    rig = Rig()
    req = b"GET / HTTP/1.1\r\nHost: web\r\n\r\n"
    rig.request(req)
    rig.respond(OK)
    # the fast path leaves the parser alone; the general path feeds it and makes a fresh one after a response
    parser = rig.up.parser
    rig.request(req)
    assert rig.respond(OK[:-1]) == OK[:-1] and not rig.up.clean  # body not all there: general path
    assert rig.respond(OK[-1:]) == OK[-1:] and not rig.client.queue
    assert rig.up.parser is not parser and rig.up.clean
    parser = rig.up.parser
    rig.request(req)
    assert rig.respond(OK) == OK and rig.up.parser is parser  # fast again
    rig.request(req)
    rig.respond(OK + b"HTTP/1.1 200 OK\r\n")  # more than one response: general; the rest is for nobody
    assert rig.up.parser is not parser and rig.up.clean
    parser = rig.up.parser
    rig.request(req)
    assert rig.respond(OK) == OK and rig.up.parser is parser


async def test_head_responses_and_closing_clients_take_the_general_path():
    rig = Rig()
    rig.request(b"HEAD / HTTP/1.1\r\nHost: web\r\n\r\n")
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
    assert rig.respond(head) == head
    rig.request(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
    rig.respond(OK)
    rig.request(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
    rig.client.closing = True  # (the listener stops while a request is in progress)
    assert rig.respond(OK) == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    assert rig.ct.closed


async def test_a_5xx_after_a_fast_request_is_retried_elsewhere():
    from meshd.model.endpoints import Add, Endpoint

    rig = Rig()
    rig.svc.table.apply(Add(rig.svc.key, (Endpoint("b1", "127.0.0.2", {"http": 1}),)))
    ep1 = rig.svc.endpoints["b1"]
    up1 = proxy.UpstreamConnection(ep1, 1)
    t1 = type(rig.ut)()
    up1.connection_made(t1)
    ep1.idle[1] = [up1]
    req = b"GET / HTTP/1.1\r\nHost: web\r\n\r\n"
    for _ in range(2):  # learn it on both endpoints (round robin)
        rig.client.data_received(req)
        ex = rig.client.queue[0]
        (rig.up if ex.ep is rig.ep else up1).data_received(OK)
    rig.ct.take(), rig.ut.take(), t1.take()
    rig.client.data_received(req)  # fast
    ex = rig.client.queue[0]
    first, other = (rig.up, up1) if ex.ep is rig.ep else (up1, rig.up)
    first.data_received(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")
    assert ex.retries == 1 and ex.up is not None and ex.up.ep is other.ep  # retried on the other endpoint
    ex.up.data_received(OK)
    assert rig.ct.take() == OK and rig.svc.stats.retries == 1


async def test_fast_requests_are_routed_by_host_on_a_shared_listener_each_time():
    import asyncio

    from meshd.model.endpoints import Endpoint, PortInfo, Reset, ServiceInfo, ServiceKey
    from sidecar.services import ServiceTable

    table = ServiceTable()
    ups = {}
    for name in ("web", "api"):
        key = ServiceKey("default", name)
        info = ServiceInfo(key, None, (PortInfo("http", 80, "http"),))
        table.apply(Reset(info, (Endpoint(f"{name}-0", "127.0.0.1", {"http": 1}),)))
        ep = table.services[key].endpoints[f"{name}-0"]
        up = proxy.UpstreamConnection(ep, 1)
        t = type(Rig().ut)()
        up.connection_made(t)
        ep.idle[1] = [up]
        ups[name] = (up, t)
    routes = [proxy.Route(s, None) for s in table.services.values()]
    listener = proxy.Listener("127.0.0.1", 8080, routes=routes)
    listener.loop = asyncio.get_running_loop()
    client = proxy.ClientConnection(listener)
    ct = type(Rig().ut)()
    client.connection_made(ct)
    for _ in range(3):  # learnt the first time, fast after
        for name in ("web", "api", "api"):
            req = b"GET / HTTP/1.1\r\nHost: %s.default\r\n\r\n" % name.encode()
            client.data_received(req)
            up, t = ups[name]
            assert t.take().startswith(b"GET / HTTP/1.1\r\nHost: %s.default\r\n" % name.encode())
            up.data_received(OK)
            assert ct.take() == OK
    listener.set_routes(routes[:1] + [proxy.Route(routes[0].service, None)])  # api's name is gone now
    client.data_received(b"GET / HTTP/1.1\r\nHost: api.default\r\n\r\n")
    assert ct.take().startswith(b"HTTP/1.1 404")  # the general path answers what the fast path cannot route


async def test_a_finished_fast_exchange_is_reused_as_new():
    rig = Rig()
    req = b"GET / HTTP/1.1\r\nHost: web\r\n\r\n"
    for _ in range(2):  # (a response head is learnt when it comes again)
        rig.request(req)
        rig.respond(OK)
    rig.request(req)  # fast
    ex = rig.client.queue[0]
    rig.respond(OK)  # fast
    assert rig.client.spare is ex and ex.done
    rig.request(req)
    assert rig.client.queue[0] is ex and rig.client.spare is None
    assert (ex.done, ex.head_sent, ex.req_done, ex.status, ex.retries) == (False, False, True, 0, 0)
    assert ex.up is rig.up and ex.ep is rig.ep and ex.deadline > 0
    rig.up.connection_lost(None)  # cut before the head: a GET is retried (on a new connection)
    assert ex.retries == 1 and not ex.done
    ex.abort()


@pytest.mark.parametrize("seconds", [1e-4, 5e-4, 7e-4, 1e-3, 2e-3, 2.5e-3, 4e-3, 5e-3, 7e-3, 0.3, 20.0])
async def test_the_fast_path_counts_latency_buckets_as_bisect(seconds: float, monkeypatch: Any):
    from bisect import bisect_left

    from sidecar.services import BUCKETS

    rig = Rig()
    req = b"GET / HTTP/1.1\r\nHost: web\r\n\r\n"
    for _ in range(2):  # (a response head is learnt when it comes again)
        rig.request(req)
        rig.respond(OK)
    now = [0.0]
    monkeypatch.setattr(rig.svc, "clock", lambda: now[0])  # (the one clock that times a request)
    rig.request(req)
    now[0] = seconds
    before = list(rig.svc.stats.buckets)
    parser = rig.up.parser
    assert rig.respond(OK) == OK and rig.up.parser is parser  # (the fast path)
    after = rig.svc.stats.buckets
    assert [b - a for a, b in zip(before, after, strict=True)].index(1) == bisect_left(BUCKETS, seconds)


async def test_an_endpoint_closing_mid_response_after_fast_requests_closes_the_client():
    rig = Rig()
    req = b"GET / HTTP/1.1\r\nHost: web\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
    rig.request(req)
    rig.respond(head + b"0123456789")  # learnt: the request and the response head
    rig.request(req)  # fast
    assert rig.respond(head + b"01234") == head + b"01234"  # the body is not all there: the general path
    rig.up.connection_lost(None)
    assert rig.ct.closed and rig.ep.outcomes[3] == 1  # connection_error, counted
    assert rig.svc.stats.in_flight == 0 and rig.ep.in_flight == 0


async def test_learning_stops_on_a_connection_whose_requests_never_repeat():
    """A client that sends a fresh request id every time pays for the fast path's learning only a few times."""
    rig = Rig()
    for i in range(proxy.FAST_REQUESTS_PER_CONNECTION + 1):
        rig.request(b"GET / HTTP/1.1\r\nHost: web\r\nX-Request-Id: %d\r\n\r\n" % i)
        rig.respond(OK)
    assert not rig.client.learning  # off for the rest of this connection: the general path, nothing learnt
    sent = rig.request(b"GET / HTTP/1.1\r\nHost: web\r\nX-Request-Id: 0\r\n\r\n")
    assert sent.startswith(b"GET / HTTP/1.1\r\nHost: web\r\nX-Request-Id: 0\r\nX-Forwarded-For: ")


async def test_a_connection_whose_requests_repeat_keeps_its_fast_path():
    rig = Rig()
    for i in range(3 * proxy.FAST_REQUESTS_PER_CONNECTION):
        rig.request(b"GET / HTTP/1.1\r\nHost: web\r\nX-Request-Id: %d\r\n\r\n" % (i % 2))
        rig.respond(OK)
    assert rig.client.fast is not None and rig.client.unrepeated == 0
