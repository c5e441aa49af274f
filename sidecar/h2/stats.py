"""HTTP/2 counters (plain integers on the hot path) and their Prometheus collector, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..services import ServiceTable
from . import codec
from .grpc import STATUS_NAMES


class H2Stats:
    """Process-wide: gRPC responses by Service and grpc-status, HTTP/2 connections and streams."""

    def __init__(self) -> None:
        self.grpc: dict[str, list[int]] = {}  # service label -> count per grpc-status (0..16, 17 = other)
        self.connections = 0  # client connections open now
        self.upstream_connections = 0
        self.streams = 0  # client streams being proxied now
        self.protocol_errors = 0

    def grpc_response(self, service: str, status: int) -> None:
        row = self.grpc.get(service)
        if row is None:
            row = self.grpc[service] = [0] * (len(STATUS_NAMES) + 1)
        row[status if 0 <= status < len(STATUS_NAMES) else len(STATUS_NAMES)] += 1


H2_STATS = H2Stats()


class H2Collector:
    """Exports H2_STATS; every Service of `table` has its OK series from start-up (dashboards rate() it)."""

    def __init__(self, table: ServiceTable, stats: H2Stats = H2_STATS) -> None:
        self.table = table
        self.stats = stats

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        grpc = CounterMetricFamily(
            "meshd_sidecar_grpc_responses", "gRPC calls answered, by Service and grpc-status.",
            labels=["service", "grpc_status", "grpc_code"],
        )  # fmt: skip
        for svc in list(self.table.services.values()):
            if svc.exists and svc.label not in s.grpc:
                grpc.add_metric([svc.label, "0", "OK"], 0)
        for service, row in list(s.grpc.items()):
            for code, value in enumerate(row):
                if value:
                    name = STATUS_NAMES[code] if code < len(STATUS_NAMES) else "OTHER"
                    grpc.add_metric(
                        [service, str(code) if code < len(STATUS_NAMES) else "other", name], value
                    )
        yield grpc
        conns = GaugeMetricFamily(
            "meshd_sidecar_h2_connections", "HTTP/2 connections open now.", labels=["side"]
        )
        conns.add_metric(["client"], s.connections)
        conns.add_metric(["upstream"], s.upstream_connections)
        yield conns
        streams = GaugeMetricFamily("meshd_sidecar_h2_streams", "HTTP/2 client streams being proxied now.")
        streams.add_metric([], s.streams)
        yield streams
        info = GaugeMetricFamily("meshd_sidecar_h2_codec_info", "The HTTP/2 codec in use (1).", labels=["codec"])
        info.add_metric([codec.NAME], 1)
        yield info
        errors = CounterMetricFamily(
            "meshd_sidecar_h2_protocol_errors", "HTTP/2 client connections closed with GOAWAY PROTOCOL_ERROR."
        )
        errors.add_metric([], s.protocol_errors)
        yield errors
