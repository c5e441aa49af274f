"""One HTTP/1 request and its response: routing, endpoint choice, retries, timeout, and the byte streams both
ways. The decisions are the shared policies' (ServiceState.pick, retry.may_retry, ServiceState.record,
ServiceStats.observe, UpstreamConnection.release); this module runs them in order."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from httptools import parse_url
from httptools.parser.errors import HttpParserError

from ..http import error_response
from ..mesh.connect import connect_endpoint
from ..retry import RETRYABLE_STATUS, may_retry
from ..services import (
    METHOD_INDEX,
    OTHER_METHOD,
    OUT_5XX,
    OUT_CONNECT,
    OUT_CONNECTION,
    OUT_SUCCESS,
    OUT_TIMEOUT,
)
from .upstream import UpstreamConnection
from .wire import (
    _FAST_RESPONSES,
    CONTINUE_100,
    R_CHUNKED,
    R_LENGTH,
    R_NONE,
    Writer,
    build_request_headers,
    frame_response,
    learn_response,
    scan_response_head,
    scan_response_head_cached,
)

if TYPE_CHECKING:
    from ..proxy import Route
    from ..services import EndpointState, ServiceState
    from .client import ClientConnection

PENDING_LIMIT = 64 * 1024  # request body buffered before an upstream is attached
REPLAY_LIMIT = 64 * 1024  # request body kept to replay on a retry
PAUSE_PIPELINE, PAUSE_BODY, PAUSE_UPSTREAM, PAUSE_UPGRADE = 1, 2, 4, 8  # why a client connection is paused


class Exchange:
    """One request/response: routing, endpoint choice, retries, timeout, and the byte streams both ways."""

    __slots__ = (
        "chunked_req", "close_after", "conn", "connecting", "deadline", "done", "early", "eof_body", "ep",
        "expect", "head", "head_sent", "headers", "keep_alive", "method", "method_idx", "pending",
        "pending_size", "plain", "port", "port_name", "replay", "replay_size", "req_done", "resp_mode",
        "retries", "sent_continue", "service", "started", "status", "t0", "t_attempt", "tried", "tunnelled",
        "up", "upgrade", "url", "version", "waiter",
    )  # fmt: skip

    def __init__(self, conn: ClientConnection, url: bytes) -> None:
        # not set here (read only once start() has set them): head, method_idx, port_name, port
        self.conn = conn
        self.method: bytes | None = None
        self.url = url
        self.headers: list[tuple[bytes, bytes]] = []
        self.version: str | None = "1.1"  # None from the head until start() reads it
        self.keep_alive = True
        self.upgrade = False
        self.started = self.done = self.close_after = self.req_done = self.head_sent = False
        # (lists created on the first chunk: most requests have no body)
        self.pending: list[bytes] | tuple[()] | None = ()
        self.pending_size = 0
        self.replay: list[bytes] | tuple[()] | None = ()
        self.replay_size = 0
        self.chunked_req = self.expect = self.sent_continue = self.tunnelled = self.eof_body = False
        self.service: ServiceState | None = None
        self.ep: EndpointState | None = None
        self.up: UpstreamConnection | None = None
        self.tried: set[EndpointState] | None = None
        self.retries = 0
        self.deadline = (
            0.0  # the service clock's time of the timeout (0: none); the listener's ticker checks it
        )
        self.waiter: asyncio.TimerHandle | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.t0 = self.t_attempt = 0.0  # (both from the Service's clock: the request, the attempt)
        self.status = 0
        self.resp_mode = R_NONE
        self.early: list[bytes] | tuple[()] = ()
        self.plain = False  # a request from the request memo whose response may come from the response memo

    def reuse(self) -> None:
        """A finished exchange from the request memo, made new for the next request from the memo."""
        self.done = self.head_sent = self.req_done = False
        self.status = 0
        self.deadline = 0.0
        self.pending = ()

    # --- request side -----------------------------------------------------------------------------------
    def start(self) -> None:
        self.started = True
        conn = self.conn
        listener = conn.listener
        method = self.method
        self.method_idx = METHOD_INDEX.get(method, OTHER_METHOD)  # type: ignore[arg-type]
        if method == b"CONNECT":
            self.local_reply(405, "CONNECT is not allowed: meshd-sidecar is not an open proxy", close=True)
            return
        url = self.url or b"/"
        if url[:1] != b"/" and url != b"*" and not self._absolute_form(url):
            return
        # keep-alive clients mostly repeat the same headers: reuse the rewritten header block
        if self.headers == conn.hkey and not self.upgrade and conn.hval is not None:
            built = conn.hval
        else:
            built = build_request_headers(self.headers, peer_ip=conn.peer_ip, upgrade=self.upgrade,
                                          proto=listener.forwarded_proto)
            if not self.upgrade:
                conn.hkey = self.headers
                conn.hval = built
        self.chunked_req = built.chunked
        self.expect = built.expect
        if self.version is None:
            # llhttp keeps an HTTP/1.0 (or 0.9, 2.0) request alive only with a Connection (or Proxy-Connection)
            # header: without one, a keep-alive request is HTTP/1.1
            if built.has_connection or not self.keep_alive:
                self.version = conn.parser.get_http_version()
            else:
                self.version = "1.1"
        self.head = b"%s %s HTTP/1.1\r\n%s" % (method, self.url or b"/", built.block)
        host = conn.last_host = built.host
        routes = listener.routes
        route = routes[0] if len(routes) == 1 else listener.route(host, self.url)
        if route is None:
            status, why, extra = listener.no_route(host, self.url)
            self.local_reply(status, why, close=not self.req_done, extra=extra)
            return
        self.dispatch(route)

    def _absolute_form(self, url: bytes) -> bool:
        """An absolute-form target: allowed only for the Services here (not an open proxy); rewritten to
        origin-form with the authority as Host. False: refused (answered)."""
        try:
            parsed: Any = parse_url(url)  # Any: the stub says bytes/int, but absent parts are None
        except HttpParserError:
            self.local_reply(400, "bad request target", close=True)
            return False
        authority = parsed.host or b""
        if parsed.port:
            authority += b":%d" % parsed.port
        if not parsed.host or not self.conn.listener.allowed_authority(authority):
            self.local_reply(
                403,
                f"refused: {authority.decode(errors='replace')} is not a Service here "
                "(meshd-sidecar is not an open proxy)",
                close=not self.req_done,
            )
            return False
        self.url = (parsed.path or b"/") + (b"?" + parsed.query if parsed.query else b"")
        self.headers = [(n, v) for n, v in self.headers if n.lower() != b"host"] + [(b"Host", authority)]
        return True

    def dispatch(self, route: Route) -> None:
        """Count the request, pick an endpoint and send the head (`self.head`, ready) on a pooled connection
        (or connect): the part of start() the request memo shares."""
        svc = self.service = route.service
        self.port_name = route.port_name if route.port_name is not None else svc.default_port_name
        self.t0 = now = svc.clock()
        svc.stats.in_flight += 1
        svc.budget.deposit(now)
        timeout = svc.config.timeout
        if timeout is not None:
            self.deadline = now + timeout
        self.attempt()

    def request_body(self, chunk: bytes) -> None:
        replay = self.replay
        if replay is not None:
            self.replay_size += len(chunk)
            if self.replay_size > REPLAY_LIMIT:
                self.replay = None
            elif replay:
                replay.append(chunk)  # type: ignore[union-attr]
            else:
                self.replay = [chunk]
        pending = self.pending
        if pending is not None:
            if pending:
                pending.append(chunk)  # type: ignore[union-attr]
            else:
                self.pending = [chunk]
            self.pending_size += len(chunk)
            if self.pending_size > PENDING_LIMIT:
                self.conn.pause(PAUSE_BODY)
        elif self.up is not None:
            self._send_body(self.up.out, chunk)
        # else: answered already (local reply); the rest of the body is read and dropped

    def _send_body(self, out: Writer, chunk: bytes) -> None:
        if self.chunked_req:
            out.write(b"%x\r\n" % len(chunk))
            out.write(chunk)
            out.write(b"\r\n")
        else:
            out.write(chunk)

    def request_done(self) -> None:
        self.req_done = True
        up = self.up
        if up is not None and self.pending is None and self.chunked_req:
            up.out.write(b"0\r\n\r\n")
        if self.done:
            self.conn.advance()

    # --- choosing and reaching an endpoint --------------------------------------------------------------
    def attempt(self) -> None:
        svc = self.service
        assert svc is not None
        ep = svc.pick(self.tried)
        if ep is None:
            self._wait_for_endpoint()
            return
        port_name = self.port_name
        port = ep.ports.get(port_name) if port_name is not None else None  # svc.target_port's common case
        if port is None:
            port = svc.target_port(ep, port_name)
            if port is None:
                self.local_reply(
                    502, f"endpoint {ep.name} of {svc.label} has no port {port_name or ''}", close=True
                )
                return
        ep.in_flight += 1
        self.ep = ep
        self.port = port
        if svc.uses_rtt:
            self.t_attempt = svc.clock()
        idle = ep.idle.get(port)
        while idle:
            up = idle.pop()
            if not up.closed:
                self.attach(up)
                return
        self.connecting = self.conn.listener.loop.create_task(self._connect(ep, port))

    def _wait_for_endpoint(self) -> None:
        svc = self.service
        assert svc is not None
        if self.waiter is None:
            listener = self.conn.listener
            self.waiter = svc.wait_for_endpoint(
                self._endpoint_ready, self._no_endpoint, loop=listener.loop, delay=listener.options.fail_fast
            )

    def _endpoint_ready(self) -> None:
        self.waiter = None
        if not self.done:
            self.attempt()

    def _no_endpoint(self, reason: str) -> None:
        self.waiter = None
        if not self.done:
            self.local_reply(503, reason, close=not self.req_done)

    async def _connect(self, ep: EndpointState, port: int) -> None:
        try:
            async with asyncio.timeout(self.conn.listener.options.connect_timeout):
                _, up = await connect_endpoint(lambda: UpstreamConnection(ep, port), ep.address, port,
                                               gateway=ep.gateway, node=ep.node)
        except asyncio.CancelledError:
            raise
        except (OSError, TimeoutError) as e:
            if self.ep is ep and not self.done:
                self.connecting = None
                self._attempt_failed(OUT_CONNECT, f"cannot connect to {ep.address}:{port}: {e or 'timeout'}")
            return
        self.connecting = None
        if self.ep is not ep or self.done:
            up.release()
            return
        self.attach(up)

    def attach(self, up: UpstreamConnection) -> None:
        """Send the request head and whatever body is buffered on `up`; from now on the body streams."""
        self.up = up
        up.exchange = self
        up.in_head = True  # its response head is the next thing it reads
        up.hbuf = b""
        up.hoff = 0
        conn = self.conn
        if conn.write_paused:
            up.pause_reading()
        out = up.out
        pending = self.pending
        self.pending = None
        if pending or (self.req_done and self.chunked_req):
            gather = out.buf is None
            if gather:
                out.buf = []  # head and buffered body leave in one write
            out.write(self.head)
            for chunk in pending or ():
                self._send_body(out, chunk)
            if self.req_done and self.chunked_req:
                out.write(b"0\r\n\r\n")
            if gather:
                out.flush()
        elif out.buf is None and not out.closed:
            up.transport.write(self.head)  # the common case: the head alone (Writer.write, inlined)
        else:
            out.write(self.head)
        if not self.req_done and self.expect and not self.sent_continue and self.version == "1.1":
            self.sent_continue = True
            conn.out.write(CONTINUE_100)
        if self.pending_size:
            self.pending_size = 0
            conn.resume(PAUSE_BODY)

    # --- response side ----------------------------------------------------------------------------------
    def _outcome(self, status: int) -> bool:
        """Record the attempt's outcome (and the endpoint's response time); True: a retry was started."""
        svc = self.service
        ep = self.ep
        assert svc is not None and ep is not None
        if svc.uses_rtt:
            now = svc.clock()
            ep.observe_rtt(now - self.t_attempt, now)
        if status >= 500:
            svc.record(ep, OUT_5XX)
            if status in RETRYABLE_STATUS and self._retry_allowed(status=status, connect_failed=False):
                self._detach_failed()
                self._retry()
                return True
        else:
            svc.record(ep, OUT_SUCCESS)
        self.status = status
        # the timeout bounds the wait for the response head (retries included), like Linkerd's
        self.deadline = 0.0
        return False

    def response_whole(self, up: UpstreamConnection, status: int, data: bytes) -> None:
        """A whole 2xx response, Content-Length framed, from the response memo: `data` is for the client."""
        if self._outcome(status):
            return
        self.resp_mode = R_LENGTH
        self.head_sent = True
        out = self.conn.out
        if out.buf is None and not out.closed:
            out.transport.write(data)  # (Writer.write, inlined)
        else:
            out.write(data)
        self.response_done(up)

    def response_head(self, up: UpstreamConnection, status: int, raw: bytes) -> None:
        """`raw`: the response's status line and header lines (each ending in CRLF)."""
        if self._outcome(status):
            return
        # framing of the response towards the client, from the raw header block (cached per distinct head)
        if status == 101:
            head, chunked, length, _ = scan_response_head(raw, upgrade=True)
        else:
            (head, chunked, length, whole), seen = scan_response_head_cached(raw)
            if (
                length
                and not chunked
                and status < 300
                and status != 204
                and self.keep_alive
                and self.version == "1.1"
                and not self.upgrade
                and self.method != b"HEAD"
                and not self.conn.closing
            ):  # the common case, decided as below: the head goes out as received (minus hop-by-hop)
                if seen and up.keep_alive and raw not in _FAST_RESPONSES:
                    # a head seen twice is learnt for the response memo (once: a head that never repeats,
                    # e.g. with a request id, costs one cache entry and no more)
                    learn_response(raw, whole, status)
                self.resp_mode = R_LENGTH
                self.head_sent = True
                self.conn.out.write(whole)
                return
        self.conn.out.write(self._frame(status, head, chunked=chunked, length=length))

    def _frame(self, status: int, head: bytes, *, chunked: bool, length: bool) -> bytes:
        """The head for the client, framed (wire.frame_response); notes whether the connection stays open."""
        mode, extra, self.keep_alive, self.eof_body = frame_response(
            status=status, method=self.method, http10=self.version == "1.0", chunked=chunked, length=length,
            upgrade=self.upgrade, keep_alive=self.keep_alive and not self.conn.closing,
        )  # fmt: skip
        self.resp_mode = mode
        self.head_sent = True
        return head + extra + b"\r\n"

    def response_body(self, chunk: bytes) -> None:
        out = self.conn.out
        if self.resp_mode == R_CHUNKED:
            out.write(b"%x\r\n" % len(chunk))
            out.write(chunk)
            out.write(b"\r\n")
        else:
            out.write(chunk)

    def response_done(self, up: UpstreamConnection) -> None:
        if self.resp_mode == R_CHUNKED:
            self.conn.out.write(b"0\r\n\r\n")
        self.up = None
        up.exchange = None
        svc = self.service
        now = svc.clock() if svc is not None else 0.0
        if not self.req_done:
            up.close()
            self.close_after = True
        elif up.keep_alive and self.pending is None:
            up.release(now)
        else:
            up.close()
        self._finish(now)

    def upstream_upgraded(self, up: UpstreamConnection, tail: bytes) -> None:
        """The endpoint said 101: from now on both connections are a raw byte tunnel."""
        conn = self.conn
        if tail:
            conn.out.write(tail)
        self.tunnelled = True
        up.tunnel = conn.out
        conn.tunnel = up.out
        conn.upgrading = None
        for data in self.early:
            up.out.write(data)
        self.early = ()
        conn.resume(PAUSE_UPGRADE)
        self._observe()
        self.deadline = 0.0

    def upstream_lost(self, up: UpstreamConnection) -> None:
        """The endpoint closed the connection while this exchange used it."""
        if self.tunnelled:
            self.conn.close()
            self._release_endpoint()
            return
        if self.head_sent:
            if self.eof_body:  # a close-delimited body ends here: a normal end
                self.up = None
                if self.resp_mode == R_CHUNKED:
                    self.conn.out.write(b"0\r\n\r\n")
                else:
                    self.close_after = True
                self._finish()
                return
            ep = self.ep
            if ep is not None:
                ep.outcomes[OUT_CONNECTION] += 1
            self.up = None
            self.close_after = True
            self.conn.close()  # the response is cut: the client must see the connection end
            self._finish()
            return
        self._attempt_failed(OUT_CONNECTION, "the endpoint closed the connection before responding")

    def upstream_failed(self, up: UpstreamConnection, why: str) -> None:
        up.abort()
        if self.up is up and not self.done:
            if self.head_sent:
                self.up = None
                self.close_after = True
                self.conn.close()
                self._finish()
            else:
                self._attempt_failed(OUT_CONNECTION, why)

    # --- failures, retries, timeouts --------------------------------------------------------------------
    def _retry_allowed(self, *, status: int | None, connect_failed: bool) -> bool:
        """retry.may_retry (the rule), within the Service's retry count and budget; never for an Upgrade."""
        svc = self.service
        assert svc is not None
        if self.retries >= svc.config.retries or self.upgrade:
            return False
        # the body is at hand: a connect failure sent none of it yet; otherwise all of it was kept for replay
        replayable = self.pending is not None if connect_failed else self.req_done and self.replay is not None
        if not may_retry(
            method=self.method or b"", status=status, connect_failed=connect_failed, replayable=replayable
        ):
            return False
        return svc.budget.withdraw(svc.clock())

    def _detach_failed(self) -> None:
        """Drop the failed attempt's connection and endpoint (remembered: a retry goes elsewhere)."""
        up = self.up
        self.up = None
        if up is not None:
            up.exchange = None
            up.abort()
        ep = self.ep
        if ep is not None:
            if self.tried is None:
                self.tried = {ep}
            else:
                self.tried.add(ep)
        self._release_endpoint()

    def _retry(self) -> None:
        svc = self.service
        assert svc is not None
        self.retries += 1
        svc.stats.retries += 1
        if self.pending is None:
            self.pending = list(self.replay or ())
            self.pending_size = self.replay_size
        self.attempt()

    def _attempt_failed(self, outcome: int, why: str) -> None:
        svc, ep = self.service, self.ep
        assert svc is not None and ep is not None
        svc.record(ep, outcome)
        if self._retry_allowed(status=None, connect_failed=outcome == OUT_CONNECT):
            self._detach_failed()
            self._retry()
            return
        self._detach_failed()
        self.local_reply(502, f"bad gateway: {svc.label} endpoint {ep.name}: {why}", close=not self.req_done)

    def on_timeout(self) -> None:
        self.deadline = 0.0
        if self.done:
            return
        svc, ep = self.service, self.ep
        assert svc is not None
        if ep is not None:
            svc.record(ep, OUT_TIMEOUT)
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        if self.head_sent:
            self.close_after = True
            self._detach_failed()
            self.conn.close()
            self._finish()
            return
        self._detach_failed()
        self.local_reply(
            504,
            f"gateway timeout: {svc.label} did not answer within {svc.config.timeout:g}s",
            close=not self.req_done,
        )

    def local_reply(self, status: int, message: str, *, close: bool, extra: bytes = b"") -> None:
        """Answer from the sidecar itself (routing errors, 502/503/504)."""
        if self.waiter is not None:
            self.waiter.cancel()
            self.waiter = None
        if self.upgrade or not self.keep_alive or self.conn.closing:
            close = True
        self.pending = None  # the rest of the request body is read and dropped
        self.conn.resume(PAUSE_BODY)
        self.status = status
        self.head_sent = True
        self.conn.out.write(error_response(status, message, close=close, extra=extra))
        if close:
            self.close_after = True
        self._finish()

    # --- endings ----------------------------------------------------------------------------------------
    def _release_endpoint(self) -> None:
        ep = self.ep
        if ep is not None:
            self.ep = None
            ep.service.release(ep)

    def _observe(self, now: float = 0.0) -> None:
        """The request ended (or became a tunnel): count it and its duration."""
        svc = self.service
        if svc is not None:
            stats = svc.stats
            stats.in_flight -= 1
            stats.observe(self.method_idx, self.status, (now or svc.clock()) - self.t0)

    def _finish(self, now: float = 0.0) -> None:
        if self.done:
            return
        self.done = True  # (the deadline is left: the ticker skips done exchanges)
        ep = self.ep
        if ep is not None:  # (_release_endpoint and _observe, inlined: this runs for every request)
            self.ep = None
            ep.service.release(ep)
        svc = self.service
        if svc is not None and not self.tunnelled:
            stats = svc.stats
            stats.in_flight -= 1
            stats.observe(self.method_idx, self.status, (now or svc.clock()) - self.t0)
        if not self.keep_alive:
            self.close_after = True
        self.conn.finished(self)

    def abort(self) -> None:
        """The client went away: drop everything this exchange holds."""
        if self.done:
            if self.tunnelled and self.up is not None:
                self.up.close()
                self._release_endpoint()
            return
        self.done = True
        self.deadline = 0.0
        if self.waiter is not None:
            self.waiter.cancel()
            self.waiter = None
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        up = self.up
        self.up = None
        if up is not None:
            up.exchange = None
            if self.tunnelled:
                up.close()
            else:
                up.abort()
        self._release_endpoint()
        if self.started and self.service is not None and not self.tunnelled:
            self.status = self.status or 499
            self._observe()
