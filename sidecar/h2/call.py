"""One HTTP/2 request (a stream) through the shared policies: route, balance, retry and deadline, upstream pool,
outlier ejection and metrics, each the one `ServiceState` owns (services.py, retry.py, outlier.py).

Every call picks its own endpoint, so one client connection spreads over every replica. The request body is
acknowledged to the client only when the endpoint's connection took it, and response data is acknowledged to
the endpoint only when the client's connection took it: flow control end to end, per stream.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING

from ..services import (
    METHOD_INDEX,
    OTHER_METHOD,
    OUT_5XX,
    OUT_CONNECT,
    OUT_CONNECTION,
    OUT_SUCCESS,
    OUT_TIMEOUT,
    EndpointState,
    ServiceState,
)
from . import grpc
from .deadlines import deadlines
from .events import CANCEL, INTERNAL_ERROR, NO_ERROR, CodecError, Headers
from .stats import H2_STATS
from .upstream import H2Upstream

if TYPE_CHECKING:
    from .server import H2Server

REPLAY_LIMIT = 64 * 1024  # request body kept to send again on a retry
CANCEL_HOLD = 0.05  # how long a trailers-only CANCELLED waits for its endpoint's GOAWAY (up_headers)
# connection-specific headers that HTTP/2 forbids (RFC 9113 8.2.2); `te: trailers` is the one allowed te
_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"host"}
)
_OUTCOME_BY_FAILURE = {grpc.CONNECT_FAILED: OUT_CONNECT, grpc.REFUSED: OUT_CONNECTION, grpc.LOST: OUT_CONNECTION,
                       grpc.UNAVAILABLE_ONLY: OUT_5XX, grpc.HTTP_STATUS: OUT_5XX, grpc.GOING_AWAY: OUT_CONNECTION}  # fmt: skip


class Call:
    """A client stream and its current attempt on one endpoint's pooled connection."""

    # (defaults at class level: a call sets only what it changes, ~20 stores fewer per request)
    svc: ServiceState | None = None
    port_name: str | None = None
    ep: EndpointState | None = None
    up: H2Upstream | None = None
    up_sid = 0  # the upstream stream while it is open (0: none, or the endpoint ended it)
    ack_sid = 0  # the upstream stream whose data is acknowledged (kept after it ended)
    tried: set[EndpointState] | None = None
    retries = 0
    req_ended = False
    _req_sent_end = False  # END_STREAM went to the endpoint on this attempt
    req_trailers: Headers | None = None
    replay_size = 0
    resp_started = False
    resp_end: Headers | None | bool = False  # False: more to come; None: ends; list: ends with trailers
    owed_up = 0  # response bytes the client took while its connection was paused: ack on resume
    status = 0
    grpc_status: int | None = None
    done = False
    t0 = 0.0
    deadline_slot = 0  # (0: no deadline armed)
    timeout = 0.0
    waiter: asyncio.TimerHandle | None = None
    _held_cancel = False  # a trailers-only CANCELLED was held once for a GOAWAY to follow

    def __init__(self, conn: H2Server, sid: int, headers: Headers) -> None:
        self.conn = conn
        self.sid = sid
        self.method = b"GET"
        self.path = b"/"
        authority: bytes | None = None
        content_type: bytes | None = None
        self.grpc_timeout: bytes | None = None
        up_headers: Headers = []
        append = up_headers.append
        for field in headers:
            name = field[0]
            if name[:1] == b":":
                if name == b":method":
                    self.method = field[1]
                elif name == b":path":
                    self.path = field[1]
                elif name == b":authority":
                    authority = field[1]
            elif name == b"content-type":
                content_type = field[1]
            elif name == b"grpc-timeout":
                self.grpc_timeout = field[1]
            elif name in _HOP or (name == b"te" and field[1].lower() != b"trailers"):
                continue
            append(field)
        if authority is None:
            authority = next((v for n, v in headers if n == b"host"), None)
            if authority is not None:
                up_headers.insert(0, (b":authority", authority))
        append((b"x-forwarded-for", conn.peer_ip.encode()))
        proto = conn.listener.forwarded_proto
        if proto is not None:  # an Ingress: the edge says how the client came
            append((b"x-forwarded-proto", proto))
            if authority is not None:
                append((b"x-forwarded-host", authority))
        self.authority = authority
        self.content_type = content_type
        self.headers = up_headers
        self.grpc = grpc.is_grpc(content_type)
        self.req_pending: deque[list[object]] = deque()  # [bytes or memoryview, flow bytes owed to the client]
        self.replay: list[bytes] | None = []
        self.resp_pending: deque[list[object]] = deque()  # [data, flow bytes owed to the endpoint]

    # --- the request --------------------------------------------------------------------------------------
    def start(self, *, ended: bool) -> None:
        self.req_ended = ended
        listener = self.conn.listener
        path = self.path
        route = listener.route(self.authority, path)
        H2_STATS.streams += 1
        self.t0 = time.monotonic()
        if route is None:
            status, why, _ = listener.no_route(self.authority, path)
            self.local_reply(status, grpc.UNIMPLEMENTED if status == 404 else grpc.UNAVAILABLE, why)
            return
        svc = self.svc = route.service
        self.port_name = route.port_name if route.port_name is not None else svc.default_port_name
        svc.stats.in_flight += 1
        svc.budget.deposit(self.t0)
        self.arm_deadline()
        self.attempt()

    def arm_deadline(self) -> None:
        """The call's deadline (grpc-timeout, the Service's meshd.io/timeout), from its start. Armed again once
        an endpoint appears: a call that came before the Service's settings had only its own grpc-timeout."""
        svc = self.svc
        assert svc is not None
        timeout = grpc.deadline(svc.config.timeout, grpc.parse_grpc_timeout(self.grpc_timeout))
        if timeout is None:
            return
        wheel = deadlines(self.conn.listener.loop)
        if self.deadline_slot:
            wheel.remove(self, self.deadline_slot)
        self.timeout = timeout
        self.deadline_slot = wheel.add(self, max(timeout - (time.monotonic() - self.t0), 0.0))

    def request_data(self, data: bytes, flow: int) -> None:
        if self.done or not data:
            self.conn.ack(self.sid, flow)
            return
        replay = self.replay
        if replay is not None:
            self.replay_size += len(data)
            if self.replay_size > REPLAY_LIMIT:
                self.replay = None
            else:
                replay.append(data)
        self.req_pending.append([data, flow])
        self.pump_request()

    def request_end(self, trailers: Headers | None) -> None:
        self.req_ended = True
        self.req_trailers = trailers
        self.pump_request()

    def pump_request(self) -> None:
        """Send buffered request data as far as the endpoint's window allows; ack what went to the client."""
        up = self.up
        if up is None or not self.up_sid or self.done:
            return
        pending = self.req_pending
        conn = self.conn
        while pending:
            item = pending[0]
            data = item[0]
            assert isinstance(data, (bytes, memoryview))
            sent = up.send_data(self.up_sid, data)
            if sent < len(data):
                item[0] = memoryview(data)[sent:]
                owed = item[1]
                assert isinstance(owed, int)
                item[1] = owed - sent
                conn.ack(self.sid, sent)
                return
            pending.popleft()
            conn.ack(self.sid, item[1])  # type: ignore[arg-type]
        if self.req_ended and not self._req_sent_end:
            self._req_sent_end = True
            if self.req_trailers is not None:
                up.send_trailers(self.up_sid, self.req_trailers)
            else:
                up.send_data(self.up_sid, b"", end=True)

    # --- choosing and reaching an endpoint ------------------------------------------------------------
    def attempt(self) -> None:
        svc = self.svc
        assert svc is not None
        ep = svc.pick(self.tried)
        if ep is None:
            if self.waiter is None:
                listener = self.conn.listener
                self.waiter = svc.wait_for_endpoint(
                    self.endpoint_ready, self.no_endpoint, loop=listener.loop, delay=listener.options.fail_fast
                )
            return
        port = svc.target_port(ep, self.port_name)
        if port is None:
            self.local_reply(
                502, grpc.UNAVAILABLE, f"endpoint {ep.name} of {svc.label} has no port {self.port_name}"
            )
            return
        ep.in_flight += 1
        self.ep = ep
        self._req_sent_end = False
        up = self.up = H2Upstream.acquire(
            ep, port, connect_timeout=self.conn.listener.options.connect_timeout
        )
        up.attach(self)

    def endpoint_ready(self) -> None:
        self.waiter = None
        if not self.done:
            self.arm_deadline()
            self.attempt()

    def no_endpoint(self, reason: str) -> None:
        self.waiter = None
        if not self.done:
            self.local_reply(503, grpc.UNAVAILABLE, reason)

    # --- upstream callbacks (upstream.Stream) -----------------------------------------------------------
    def up_ready(self, up: H2Upstream) -> None:
        if self.done or up is not self.up:
            return
        end = self.req_ended and not self.req_pending and self.req_trailers is None
        try:
            self.up_sid = self.ack_sid = up.start_stream(self, self.headers, end=end)
        except CodecError as e:
            self.up_failed(grpc.REFUSED, f"cannot open a stream: {e}")
            return
        if end:
            self._req_sent_end = True
        self.pump_request()

    def up_headers(self, headers: Headers, ended: bool) -> None:
        if self.done:
            return
        status = 0
        for name, value in headers:
            if name == b":status":
                status = int(value)
                break
        if 100 <= status < 200:
            return  # interim responses are not forwarded (gRPC has none)
        svc, ep = self.svc, self.ep
        assert svc is not None and ep is not None
        failure = None
        if ended and self.grpc:
            code, going_away = grpc.grpc_status(headers), self.up is not None and self.up.goaway_received
            if code == grpc.CANCELLED and not going_away and not self._held_cancel:
                # grpc-core's shutdown may write a dropped call's CANCELLED before its GOAWAY: wait a moment
                # for the GOAWAY that makes it a call the endpoint never started (retried), else pass it on
                self._held_cancel = True
                asyncio.get_running_loop().call_later(CANCEL_HOLD, self.up_headers, headers, ended)
                return
            failure = grpc.trailers_only_failure(code, going_away=going_away)
        elif not self.grpc and status in (502, 503, 504):
            failure = grpc.HTTP_STATUS
        if failure is not None and self._retry(failure, status):
            return
        self.status = status
        if svc.uses_rtt:
            ep.observe_rtt(time.monotonic() - self.t0, time.monotonic())
        self.resp_started = True
        try:
            self.conn.codec.send_headers(self.sid, headers, end=ended)
        except CodecError:
            self.client_gone()
            return
        self.conn.flush()
        if ended:
            self.grpc_status = grpc.grpc_status(headers)
            self._upstream_ended()
            self.finish(OUT_5XX if status >= 500 or self.grpc_status == grpc.UNAVAILABLE else OUT_SUCCESS)

    def up_data(self, data: bytes, flow: int) -> None:
        if self.done or not data:  # (an empty DATA frame, e.g. one that only carries END_STREAM)
            if self.up is not None and self.ack_sid:
                self.up.ack(self.ack_sid, flow)
            return
        self.resp_pending.append([data, flow])
        self._pump_soon()

    def up_trailers(self, headers: Headers) -> None:
        self.grpc_status = grpc.grpc_status(headers)
        self.resp_end = headers
        self._pump_soon()

    def up_end(self) -> None:
        self.resp_end = None
        self._pump_soon()

    def _pump_soon(self) -> None:
        """Within a batch of the endpoint's frames, pump once at its end (the last DATA carries END_STREAM)."""
        up = self.up
        if up is not None and up.batch is not None:
            up.batch.add(self)
        else:
            self.pump_response()

    def up_writable(self) -> None:
        self.pump_request()

    def up_failed(self, failure: str, why: str) -> None:
        if self.done:
            return
        self.up_sid = 0
        if not self.resp_started and self._retry(failure, None):
            return
        svc, ep = self.svc, self.ep
        assert svc is not None and ep is not None
        message = f"{svc.label} endpoint {ep.name}: {why}"
        if not self.resp_started:
            self.local_reply(502, grpc.UNAVAILABLE, message, outcome=_OUTCOME_BY_FAILURE[failure])
        elif self.grpc:
            self._end_with_status(grpc.UNAVAILABLE, message, outcome=_OUTCOME_BY_FAILURE[failure])
        else:
            self.conn.reset(self.sid, INTERNAL_ERROR)
            self.finish(_OUTCOME_BY_FAILURE[failure])

    def _upstream_ended(self) -> None:
        """The endpoint ended its side: if our side is still open (it answered before the whole request came),
        reset it with NO_ERROR (RFC 9113 8.1) so the stream does not hold a slot on the shared connection."""
        if self.up is not None and self.up_sid and not self._req_sent_end:
            self.up.reset(self.up_sid, NO_ERROR)
        self.up_sid = 0

    def _retry(self, failure: str, status: int | None) -> bool:
        """Record the failed attempt; if the retry rule and budget allow, start another elsewhere."""
        svc, ep = self.svc, self.ep
        assert svc is not None and ep is not None
        replayable = self.replay is not None and (
            self.req_ended or failure in (grpc.CONNECT_FAILED, grpc.REFUSED)
        )
        allowed = (
            self.retries < svc.config.retries
            and grpc.may_retry_stream(
                failure=failure, grpc=self.grpc, method=self.method, status=status, replayable=replayable
            )
            and svc.budget.withdraw(time.monotonic())
        )
        if not allowed:
            return False
        svc.record(ep, _OUTCOME_BY_FAILURE[failure])
        self._drop_attempt()
        if self.tried is None:
            self.tried = {ep}
        else:
            self.tried.add(ep)
        self.retries += 1
        svc.stats.retries += 1
        for _data, flow in self.req_pending:  # (all in the replay copy: acknowledge them now)
            self.conn.ack(self.sid, flow)  # type: ignore[arg-type]
        self.req_pending = deque([d, 0] for d in self.replay or ())
        self.attempt()
        return True

    def _drop_attempt(self) -> None:
        up, ep = self.up, self.ep
        self.up = None
        self.ep = None
        if up is not None:
            if self.up_sid:
                up.reset(self.up_sid)
            else:
                up.detach(self)
        self.up_sid = 0
        if ep is not None:
            ep.service.release(ep)

    # --- the response towards the client ----------------------------------------------------------------
    def pump_response(self) -> None:
        if self.done:
            return
        conn = self.conn
        codec = conn.codec
        pending = self.resp_pending
        up, ack_sid = self.up, self.ack_sid
        try:
            while pending:
                item = pending[0]
                data = item[0]
                assert isinstance(data, (bytes, memoryview))
                room = min(codec.window(self.sid), len(data))
                if conn.write_paused or room <= 0:
                    break
                last = room == len(data) and len(pending) == 1 and self.resp_end is None
                codec.send_data(self.sid, data if room == len(data) else data[:room], end=last)
                if room < len(data):
                    item[0] = memoryview(data)[room:]
                    item[1] = item[1] - room  # type: ignore[operator]
                    if up is not None and ack_sid:
                        up.ack(ack_sid, room)
                    break
                pending.popleft()
                if up is not None and ack_sid:
                    up.ack(ack_sid, item[1])  # type: ignore[arg-type]
                if last:
                    self.resp_end = False  # (sent with the data)
                    self._response_complete()
                    return
            if not pending and self.resp_end is not False:
                trailers = self.resp_end
                if trailers is None:
                    codec.end_stream(self.sid)
                else:
                    codec.send_headers(self.sid, trailers, end=True)  # type: ignore[arg-type]
                self._response_complete()
                return
        except CodecError:
            self.client_gone()
            return
        conn.flush()

    def _response_complete(self) -> None:
        self.conn.flush()
        self._upstream_ended()
        self.finish(OUT_5XX if self.status >= 500 or self.grpc_status == grpc.UNAVAILABLE else OUT_SUCCESS)

    def client_writable(self) -> None:
        self.pump_response()

    # --- endings ----------------------------------------------------------------------------------------
    def deadline_passed(self) -> None:
        self.deadline_slot = 0
        self.on_timeout(self.timeout)

    def on_timeout(self, timeout: float) -> None:
        if self.done:
            return
        svc = self.svc
        assert svc is not None
        message = f"{svc.label} did not answer within {timeout:g}s"
        if self.resp_started and not self.grpc:
            self.conn.reset(self.sid, CANCEL)
            self.finish(OUT_TIMEOUT)
        elif self.resp_started:
            self._end_with_status(grpc.DEADLINE_EXCEEDED, message, outcome=OUT_TIMEOUT)
        else:
            self.local_reply(504, grpc.DEADLINE_EXCEEDED, f"gateway timeout: {message}", outcome=OUT_TIMEOUT)

    def local_reply(self, status: int, grpc_status: int, message: str, *, outcome: int | None = None) -> None:
        """Answer from the sidecar: a trailers-only gRPC response for gRPC calls, else `status` with a text."""
        if self.waiter is not None:
            self.waiter.cancel()
            self.waiter = None
        codec = self.conn.codec
        try:
            if self.grpc:
                self.status, self.grpc_status = 200, grpc_status
                codec.send_headers(self.sid, [
                    (b":status", b"200"), (b"content-type", b"application/grpc"),
                    (b"grpc-status", b"%d" % grpc_status), (b"grpc-message", grpc.encode_message(message)),
                ], end=True)  # fmt: skip
            else:
                self.status = status
                body = message.encode() + b"\n"
                codec.send_headers(self.sid, [
                    (b":status", b"%d" % status), (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"%d" % len(body)),
                ], end=False)  # fmt: skip
                codec.send_data(self.sid, body, end=True)
        except CodecError:
            pass
        self.conn.flush()
        self.finish(outcome)

    def _end_with_status(self, grpc_status: int, message: str, *, outcome: int) -> None:
        """A gRPC response already started: end it with trailers carrying `grpc_status`."""
        self.grpc_status = grpc_status
        try:
            self.conn.codec.send_headers(self.sid, [
                (b"grpc-status", b"%d" % grpc_status), (b"grpc-message", grpc.encode_message(message)),
            ], end=True)  # fmt: skip
        except CodecError:
            self.conn.reset(self.sid, CANCEL)
        self.conn.flush()
        self.finish(outcome)

    def finish(self, outcome: int | None) -> None:
        """The response went out (or the client left): release the endpoint, count, forget the stream."""
        if self.done:
            return
        self.done = True
        H2_STATS.streams -= 1
        if self.deadline_slot:
            deadlines(self.conn.listener.loop).remove(self, self.deadline_slot)
            self.deadline_slot = 0
        if self.waiter is not None:
            self.waiter.cancel()
            self.waiter = None
        svc, ep = self.svc, self.ep
        if ep is not None and svc is not None and outcome is not None:
            svc.record(ep, outcome)
        if self.up is not None and self.ack_sid:
            for _data, flow in self.resp_pending:  # never sent: credit the shared connection's window
                self.up.ack(self.ack_sid, flow)  # type: ignore[arg-type]
        self.resp_pending.clear()
        if self.up is not None and self.up_sid:
            self.up.reset(self.up_sid, CANCEL if outcome is None else NO_ERROR)
        elif self.up is not None:
            self.up.detach(self)
        self.up = None
        self.up_sid = 0
        self.ep = None
        if ep is not None:
            ep.service.release(ep)
        if svc is not None:
            svc.stats.in_flight -= 1
            status = self.status or 499
            svc.stats.observe(METHOD_INDEX.get(self.method, OTHER_METHOD), status, time.monotonic() - self.t0)
            if self.grpc:
                code = self.grpc_status
                if code is None:
                    code = grpc.CANCELLED if status == 499 else grpc.status_from_http(status)
                H2_STATS.grpc_response(svc.label, code)
        if not self.req_ended and outcome is not None:
            self.conn.reset(
                self.sid, NO_ERROR
            )  # the response is complete: stop sending the request
        for _data, flow in self.req_pending:
            self.conn.ack(self.sid, flow)  # type: ignore[arg-type]
        self.req_pending.clear()
        self.conn.call_done(self.sid)

    def client_gone(self) -> None:
        """The client reset the stream or closed the connection."""
        if not self.done:
            self.status = self.status or 499
            self.finish(None)
