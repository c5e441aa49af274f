"""The sidecar's Prometheus metrics: plain integers on the hot path, exported by a Collector at scrape time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from .h2.stats import H2Collector
from .mesh.stats import MeshCollector
from .proxy import STATS
from .services import BUCKETS, CODE_CLASSES, METHODS, OUTCOMES, ServiceTable

log = logging.getLogger(__name__)
TO_ENDPOINT, TO_CLIENT = "to_endpoint", "to_client"  # the direction label of byte and datagram counts
_ALWAYS = {(0, 1), (0, 2), (0, 3), (0, 4)}  # GET x 2xx..5xx exist from start-up for every Service


class SidecarCollector:
    """Reads the ServiceTable's counters when Prometheus scrapes."""

    def __init__(self, table: ServiceTable) -> None:
        self.table = table

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "meshd_sidecar_requests", "Requests proxied, by Service, method and status class.",
            labels=["service", "method", "code_class"],
        )  # fmt: skip
        duration = HistogramMetricFamily(
            "meshd_sidecar_request_duration_seconds",
            "Time from request headers to the end of the response, as the client sees it.",
            labels=["service"],
        )
        attempts = CounterMetricFamily(
            "meshd_sidecar_upstream_attempts", "Attempts sent to endpoints, by outcome.",
            labels=["service", "endpoint", "outcome"],
        )  # fmt: skip
        retries = CounterMetricFamily("meshd_sidecar_retries", "Retried attempts.", labels=["service"])
        ejections = CounterMetricFamily(
            "meshd_sidecar_ejections", "Endpoints ejected by passive outlier detection.", labels=["service"]
        )
        endpoints = GaugeMetricFamily(
            "meshd_sidecar_endpoints", "Ready endpoints, balanced or ejected.", labels=["service", "state"]
        )
        in_flight = GaugeMetricFamily(
            "meshd_sidecar_in_flight_requests", "Requests being proxied now.", labels=["service"]
        )
        tcp_opened = CounterMetricFamily(
            "meshd_sidecar_tcp_connections", "Opaque TCP client connections accepted.", labels=["service"]
        )
        tcp_active = GaugeMetricFamily(
            "meshd_sidecar_tcp_active_connections", "Opaque TCP connections open now.", labels=["service"]
        )
        tcp_bytes = CounterMetricFamily(
            "meshd_sidecar_tcp_bytes", "Bytes passed on opaque TCP connections, by direction.",
            labels=["service", "direction"],
        )  # fmt: skip
        udp_datagrams = CounterMetricFamily(
            "meshd_sidecar_udp_datagrams", "UDP datagrams passed, by direction.", labels=["service", "direction"]
        )
        udp_bytes = CounterMetricFamily(
            "meshd_sidecar_udp_bytes", "UDP payload bytes passed, by direction.", labels=["service", "direction"]
        )
        udp_flows = GaugeMetricFamily(
            "meshd_sidecar_udp_flows", "UDP client flows (client address:port) with an endpoint now.",
            labels=["service"],
        )  # fmt: skip
        now = self.table.clock()
        for svc in list(self.table.services.values()):
            if not svc.exists and not svc.stats.in_flight and svc.info is not None:
                continue
            label = svc.label
            stats = svc.stats
            for m, row in enumerate(stats.requests):
                for c, value in enumerate(row):
                    if value or (m, c) in _ALWAYS:
                        requests.add_metric([label, METHODS[m], CODE_CLASSES[c]], value)
            cumulative = 0
            buckets = []
            for bound, count in zip(BUCKETS, stats.buckets):
                cumulative += count
                buckets.append((repr(bound), cumulative))
            cumulative += stats.buckets[-1]
            buckets.append(("+Inf", cumulative))
            duration.add_metric([label], buckets, stats.duration_sum)
            for ep in list(svc.endpoints.values()) + list(svc.draining.values()):
                for o, value in enumerate(ep.outcomes):
                    attempts.add_metric([label, ep.name, OUTCOMES[o]], value)
            retries.add_metric([label], stats.retries)
            ejections.add_metric([label], stats.ejections)
            ready = [e for e in svc.endpoints.values() if e.ready]
            ejected = sum(1 for e in ready if svc.outlier.is_ejected(e.name, now))
            endpoints.add_metric([label, "ready"], len(ready) - ejected)
            endpoints.add_metric([label, "ejected"], ejected)
            in_flight.add_metric([label], stats.in_flight)
            l4 = svc.l4
            tcp_opened.add_metric([label], l4.tcp_opened)
            tcp_active.add_metric([label], l4.tcp_active)
            tcp_bytes.add_metric([label, TO_ENDPOINT], l4.tcp_bytes_in)
            tcp_bytes.add_metric([label, TO_CLIENT], l4.tcp_bytes_out)
            udp_datagrams.add_metric([label, TO_ENDPOINT], l4.udp_datagrams_in)
            udp_datagrams.add_metric([label, TO_CLIENT], l4.udp_datagrams_out)
            udp_bytes.add_metric([label, TO_ENDPOINT], l4.udp_bytes_in)
            udp_bytes.add_metric([label, TO_CLIENT], l4.udp_bytes_out)
            udp_flows.add_metric([label], l4.udp_flows)
        yield requests
        yield duration
        yield attempts
        yield retries
        yield ejections
        yield endpoints
        yield in_flight
        yield from (tcp_opened, tcp_active, tcp_bytes, udp_datagrams, udp_bytes, udp_flows)
        active = GaugeMetricFamily("meshd_sidecar_active_connections", "Client connections open now.")
        active.add_metric([], STATS.active_connections)
        yield active


def make_registry(table: ServiceTable) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(SidecarCollector(table))  # type: ignore[arg-type]
    registry.register(H2Collector(table))  # type: ignore[arg-type]
    registry.register(MeshCollector())  # type: ignore[arg-type]
    return registry


async def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> asyncio.base_events.Server:
    """A tiny HTTP/1.1 server: GET /metrics (Prometheus text) and GET /healthz."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0].split()
                path = line[1].split(b"?")[0] if len(line) > 1 else b"/"
                keep = b"connection: close" not in head.lower() and line[2:3] != [b"HTTP/1.0"]
                if path == b"/metrics":
                    t = time.perf_counter()
                    body = generate_latest(registry)
                    log.debug("metrics rendered in %.1f ms", (time.perf_counter() - t) * 1000)
                    status, ctype = b"200 OK", CONTENT_TYPE_LATEST.encode()
                elif path == b"/healthz":
                    status, ctype, body = b"200 OK", b"text/plain", b"ok\n"
                else:
                    status, ctype, body = b"404 Not Found", b"text/plain", b"not found\n"
                writer.write(
                    b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s\r\n%s"
                    % (status, ctype, len(body), b"" if keep else b"connection: close\r\n", body)
                )
                await writer.drain()
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
