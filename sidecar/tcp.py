"""The opaque TCP codec: bytes both ways between a client and one endpoint, balanced per connection.

The endpoint is the Service's least-connected by power of two choices (`ServiceState.conn_balancer`); a
refused or failed connect is retried on another endpoint before the client sees anything. Half-close passes
both ways (a FIN from one side is written as a FIN to the other), and so does back-pressure (a side whose
write buffer is full pauses reading from the other). A connection counts in its endpoint's in-flight count
from connect to close, so an endpoint leaving the registry gets no new connection and is acknowledged as
drained when its last one ends. Idle connections close after `ProxyOptions.tcp_idle_timeout`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from .mesh.connect import connect_endpoint
from .services import OUT_CONNECT, OUT_SUCCESS, EndpointState
from .unread import unread_bytes

if TYPE_CHECKING:
    from .proxy import Listener, ProxyOptions

log = logging.getLogger(__name__)
WRITE_HIGH = 256 * 1024  # a side's write buffer above this pauses reading from the other side


class TcpConnection(asyncio.Protocol):
    """One client connection on an opaque TCP port."""

    def __init__(self, listener: Listener, initial: bytes = b"") -> None:
        route = listener.routes[0]  # one connection, one Service: nothing to route by
        self.listener = listener
        self.service = route.service
        self.port_name = route.port_name
        self.stats = route.service.l4
        self.transport: Any = None
        self.up: Upstream | None = None
        self.ep: EndpointState | None = None
        self.pending: list[bytes] = []  # client bytes before the upstream connection is made
        self.eof = False  # the client sent its FIN
        self.closed = False
        self.active = False  # a byte passed since the last idle tick
        self.quiet = 0
        self.task: asyncio.Task[None] | None = None

    # --- the client side -----------------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH)
        transport.pause_reading()  # until the upstream connection is made
        self.listener.streams.add(self)
        self.stats.tcp_opened += 1
        self.stats.tcp_active += 1
        self.task = asyncio.get_running_loop().create_task(self._connect())

    def data_received(self, data: bytes) -> None:
        self.stats.tcp_bytes_in += len(data)
        self.active = True
        up = self.up
        if up is not None:
            up.transport.write(data)
        else:
            self.pending.append(data)

    def eof_received(self) -> bool:
        self.eof = True
        up = self.up
        if up is None:
            return True  # written after the pending bytes once connected
        if up.eof or up.transport.is_closing():
            up.transport.close()
            return False
        up.transport.write_eof()
        return True

    def pause_writing(self) -> None:
        if self.up is not None:
            self.up.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.up is not None:
            self.up.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.listener.streams.discard(self)
        self.stats.tcp_active -= 1
        if self.up is not None:
            self.up.transport.close()  # after what is buffered for it
        elif self.task is not None:
            self.task.cancel()

    def idle_tick(self, options: ProxyOptions) -> None:
        """Once a second (the listener's tick): close a connection quiet for the idle timeout."""
        if self.active:
            self.active = False
            self.quiet = 0
            return
        self.quiet += 1
        if self.quiet >= options.tcp_idle_timeout:
            log.debug("closing an opaque TCP connection to %s idle for %ds", self.service.label, self.quiet)
            self.close()

    def close(self) -> None:
        self.transport.close()
        if self.up is not None:
            self.up.transport.close()

    # --- the upstream side ---------------------------------------------------------------------------
    async def _connect(self) -> None:
        """Connect to an endpoint, another one on failure; all failed or none ready: close the client."""
        svc = self.service
        options = self.listener.options
        tried: set[EndpointState] = set()
        waited = False
        while not self.closed and len(tried) <= svc.config.retries:
            ep = svc.pick(tried, svc.conn_balancer)
            if ep is None or ep in tried:
                if tried or waited or not await self._wait_for_endpoint(options.fail_fast):
                    break
                waited = True
                continue
            tried.add(ep)
            port = svc.target_port(ep, self.port_name)
            if port is None:
                continue
            ep.in_flight += 1  # released by the Upstream once made, else here
            up = Upstream(self, ep)
            try:
                async with asyncio.timeout(options.connect_timeout):
                    await connect_endpoint(lambda: up, ep.address, port, gateway=ep.gateway,  # noqa: B023
                                           node=ep.node)
            except (OSError, TimeoutError) as e:
                if not up.made:
                    svc.release(ep)
                svc.record(ep, OUT_CONNECT)
                log.info("%s: cannot connect to %s (%s:%d): %s", svc.label, ep.name, ep.address, port, e)
                continue
            except BaseException:
                if not up.made:
                    svc.release(ep)
                raise
            svc.record(ep, OUT_SUCCESS)
            return
        if not self.closed:
            self.transport.abort()  # no endpoint took it: the client sees a reset, as from a closed port

    async def _wait_for_endpoint(self, timeout: float) -> bool:
        """Wait (at most `timeout`) for the Service to have a ready endpoint."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        self.service.waiters.append(wake)
        try:
            async with asyncio.timeout(timeout):
                await ready
        except TimeoutError:
            return False
        return True

    def upstream_made(self, up: Upstream) -> None:
        self.up = up
        self.ep = up.ep
        if self.closed:
            up.transport.close()
            return
        if self.pending:
            up.transport.write(b"".join(self.pending))
            self.pending = []
        if self.eof:
            up.transport.write_eof()
        else:
            self.transport.resume_reading()

    def upstream_eof(self, up: Upstream) -> bool:
        transport = self.transport
        if self.eof or transport.is_closing() or not transport.can_write_eof():
            transport.close()
            return False
        transport.write_eof()
        return True


class Upstream(asyncio.Protocol):
    """The endpoint side of a TcpConnection."""

    __slots__ = ("conn", "eof", "ep", "made", "transport")

    def __init__(self, conn: TcpConnection, ep: EndpointState) -> None:
        self.conn = conn
        self.ep = ep
        self.eof = False
        self.made = False
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.made = True
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH)
        self.conn.upstream_made(self)

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.stats.tcp_bytes_out += len(data)
        conn.active = True
        conn.transport.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        return self.conn.upstream_eof(self)

    def pause_writing(self) -> None:
        self.conn.transport.pause_reading()

    def resume_writing(self) -> None:
        self.conn.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        conn = self.conn
        conn.service.release(self.ep)
        if exc is not None and not conn.closed:
            rest = unread_bytes(self.transport)  # a write failed first: what the endpoint said last (unread.py)
            if rest:
                self.data_received(rest)
        conn.transport.close()  # after what is buffered for the client
