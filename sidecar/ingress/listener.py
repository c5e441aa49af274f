"""The Ingress's listeners: plain HTTP and HTTPS on the external address, routing each request by host and path
(sidecar/ingress/routing.py) to a Service, then through the same data plane as the mesh's listeners (the HTTP/1
and HTTP/2 codecs, balancing, retries and timeouts, outlier ejection, upstream pools, metrics)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric

from meshd.model.endpoints import ServiceKey
from meshd.model.ingress import IngressBackend, IngressRoute, IngressTable

from ..codecs import codec_for, take_over
from ..http import split_host
from ..protocols import Protocol, select_protocol
from ..proxy import ClientConnection, Listener, ProxyOptions, Route
from ..services import ServiceState, ServiceTable
from .routing import IngressRouter, request_path
from .tls import Certificates

log = logging.getLogger(__name__)
SEEN_LIMIT = 4096  # (Host, target) pairs whose route is remembered (then forgotten all at once)


def port_name_of(svc: ServiceState, backend: IngressBackend) -> str | None:
    """The Service port a backend names (by number or name), as the route's port name; None: no such port."""
    info = svc.info
    if info is None:
        return None
    for port in info.ports:
        if port.port == backend.port if isinstance(backend.port, int) else port.name == backend.port:
            return port.name
    return None


class AlpnSwitch(asyncio.Protocol):
    """A TLS connection, handshake done: HTTP/2 if the client chose h2 by ALPN, else HTTP/1."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener

    def connection_made(self, transport: Any) -> None:
        sslobj = transport.get_extra_info("ssl_object")
        alpn = sslobj.selected_alpn_protocol() if sslobj is not None else None
        codec = codec_for(Protocol.H2C if alpn == "h2" else Protocol.HTTP1)(self.listener, b"")
        take_over(transport, codec, b"", eof=False)


class IngressListener(Listener):
    """One Ingress address: routes by the IngressTable, not by Service names."""

    def __init__(self, host: str, port: int, *, services: ServiceTable, options: ProxyOptions,
                 certificates: Certificates | None = None, https_port: int | None = None) -> None:
        self.services = services
        self.router = IngressRouter(IngressTable())
        self.certificates = certificates
        self.https_port = https_port  # where a redirect to HTTPS goes (None: no HTTPS, no redirect)
        self.cache: dict[IngressRoute, Route] = {}
        self.seen: dict[tuple[bytes | None, bytes], tuple[Route, IngressRoute]] = {}  # (Host, target): repeats
        self.routed: dict[IngressRoute, int] = {}  # requests routed by each Ingress path (the metrics)
        self.refused: dict[int, int] = {}  # requests answered here, by status (404, 503, 308)
        super().__init__(host, port, routes=[], options=options)
        self.forwarded_proto = b"https" if certificates is not None else b"http"
        if certificates is not None:
            self.ssl_context = certificates.context

    def set_routes(self, routes: list[Route]) -> None:
        self.routes = []
        self.by_host = {}
        self.protocol = Protocol.HTTP1
        self.accept = self._accept_tls if self.certificates is not None else self._accept_plain

    def _accept_plain(self) -> asyncio.BaseProtocol:
        return ClientConnection(self)

    def _accept_tls(self) -> asyncio.BaseProtocol:
        return AlpnSwitch(self)

    def use(self, router: IngressRouter) -> None:
        self.router = router
        self.forget()

    def forget(self) -> None:
        """Routes may have changed (the table, a Service): decide again."""
        self.cache.clear()
        self.seen.clear()

    def decide(self, host: bytes | None, target: bytes) -> IngressRoute | None:
        name = split_host(host).decode("ascii", "replace") if host else ""
        return self.router.decide(name, request_path(target.decode("latin-1")))

    def _redirects(self, decided: IngressRoute) -> bool:
        return decided.ssl_redirect and self.certificates is None and self.https_port is not None

    def route(self, host: bytes | None, target: bytes = b"/") -> Route | None:
        hit = self.seen.get((host, target))
        if hit is None:
            decided = self.decide(host, target)
            route = self._route(decided)
            if route is None or decided is None:
                return None
            if len(self.seen) >= SEEN_LIMIT:
                self.seen.clear()
            hit = self.seen[(host, target)] = (route, decided)
        routed = self.routed
        routed[hit[1]] = routed.get(hit[1], 0) + 1
        return hit[0]

    def _route(self, decided: IngressRoute | None) -> Route | None:
        if decided is None or self._redirects(decided):
            return None
        route = self.cache.get(decided)
        if route is None:
            b = decided.backend
            svc = self.services.get(ServiceKey(b.namespace, b.service))
            if svc.info is None:
                route = Route(svc, None)  # not (yet) known: 503 with the reason after the fail-fast wait
            else:
                name = port_name_of(svc, b)
                if name is None:
                    return None
                route = Route(svc, name)
            self.cache[decided] = route
        return route

    def no_route(self, host: bytes | None, target: bytes) -> tuple[int, str, bytes]:
        decided = self.decide(host, target)
        status, why, extra = self._refusal(decided, host, target)
        self.refused[status] = self.refused.get(status, 0) + 1
        return status, why, extra

    def _refusal(self, decided: IngressRoute | None, host: bytes | None, target: bytes) -> tuple[int, str, bytes]:
        shown = host.decode(errors="replace") if host else "(no Host header)"
        if decided is None:
            return 404, f"no Ingress rule for host {shown} path {target.decode('latin-1')}", b""
        if self._redirects(decided):
            name = split_host(host or b"").decode("ascii", "replace") or self.host
            port = "" if self.https_port == 443 else f":{self.https_port}"
            return 308, "redirecting to HTTPS", f"location: https://{name}{port}{target.decode('latin-1')}\r\n".encode()
        b = decided.backend
        return 503, (f"Ingress {decided.ingress}: Service {b.namespace}/{b.service} has no port {b.port}"), b""

    def allowed_authority(self, host: bytes) -> bool:
        return True  # an absolute-form target is routed by its host like any other request


class IngressCollector:
    """The Ingress's own counters at scrape time: requests by Ingress, host, path and listener; requests it
    answered itself by status. (Codes and latency are the backend Service's, as in the mesh.)"""

    def __init__(self, server: IngressServer) -> None:
        self.server = server

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        routed = CounterMetricFamily("meshd_sidecar_ingress_requests", "Requests routed by an Ingress rule.",
                                     labels=["ingress", "host", "path", "service", "listener"])
        refused = CounterMetricFamily("meshd_sidecar_ingress_refused", "Requests the Ingress answered itself (404: no rule, "
                                      "503: no such Service port, 308: to HTTPS).", labels=["code", "listener"])
        for listener in self.server.listeners:
            scheme = "https" if listener.certificates is not None else "http"
            for r, n in listener.routed.items():
                b = r.backend
                routed.add_metric([r.ingress, r.host or "*", r.path, f"{b.namespace}/{b.service}", scheme], n)
            for status in (404, 503, 308):  # (each from start, 0 until it happens)
                refused.add_metric([str(status), scheme], listener.refused.get(status, 0))
        yield routed
        yield refused


class IngressServer:
    """The Ingress's listeners (either may be off), kept bound (a bind failure is logged and retried: port 80
    needs root), following the agent's IngressTable."""

    def __init__(self, services: ServiceTable, *, options: ProxyOptions, http: tuple[str, int] | None,
                 https: tuple[str, int] | None, retry: float = 10.0) -> None:
        self.certificates = Certificates()
        self.listeners: list[IngressListener] = []
        self.retry = retry
        https_port = https[1] if https is not None else None
        if http is not None:
            self.listeners.append(IngressListener(*http, services=services, options=options, https_port=https_port))
        if https is not None:
            self.listeners.append(IngressListener(*https, services=services, options=options,
                                                  certificates=self.certificates, https_port=https_port))
        self.services = services
        self.router = IngressRouter(IngressTable())
        self.certificates.speaks_h2 = self.speaks_h2
        self.started: set[IngressListener] = set()
        self.failed: dict[IngressListener, str] = {}
        services.listeners.append(self._services_changed)

    def _services_changed(self) -> None:
        for listener in self.listeners:
            listener.forget()

    def update(self, table: IngressTable) -> None:
        """A new table from the agent (routes and certificates)."""
        self.certificates.update(table)
        router = self.router = IngressRouter(table)
        for listener in self.listeners:
            listener.use(router)
        log.info("Ingress: %d routes%s, %d TLS entries", len(table.routes),
                 " and a default backend" if table.default else "", len(table.tls))

    def speaks_h2(self, host: str) -> bool:
        """Do all the backends a host's requests may reach speak HTTP/2 (appProtocol h2c or grpc, ...)?"""
        routes = self.router.routes_for(host)
        return bool(routes) and all(self._h2(r.backend) for r in routes)

    def _h2(self, backend: IngressBackend) -> bool:
        svc = self.services.services.get(ServiceKey(backend.namespace, backend.service))
        info = svc.info if svc is not None else None
        if info is None:
            return False
        name = port_name_of(svc, backend)  # type: ignore[arg-type]
        port = next((p for p in info.ports if p.name == name), None)
        return port is not None and select_protocol(port, info.annotations) is Protocol.H2C

    async def run(self) -> None:
        while True:
            for listener in self.listeners:
                if listener in self.started:
                    continue
                try:
                    await listener.start(freebind=True)
                except OSError as error:
                    if self.failed.get(listener) != str(error):
                        log.warning("Ingress: cannot listen on %s:%d (%s): %s (retrying every %gs)", listener.host,
                                    listener.port, "https" if listener.certificates else "http", error, self.retry)
                    self.failed[listener] = str(error)
                    continue
                self.failed.pop(listener, None)
                self.started.add(listener)
                log.info("Ingress: listening on %s:%d (%s)", listener.host, listener.port,
                         "https" if listener.certificates else "http")
            if len(self.started) == len(self.listeners):
                return
            await asyncio.sleep(self.retry)

    async def stop(self, grace: float) -> None:
        await asyncio.gather(*(listener.stop(grace) for listener in self.started))
