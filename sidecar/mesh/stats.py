"""The mesh's counters (plain integers on the path) and their Prometheus collector, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

REFUSALS = ("peer", "target", "connect")  # a certificate refused; a target that is no pod of this node; the pod


class MeshStats:
    def __init__(self) -> None:
        self.accepted = 0  # gateway connections that reached a pod
        self.refused = dict.fromkeys(REFUSALS, 0)
        self.active = 0  # gateway connections open now
        self.outbound = 0  # connections to other nodes' gateways made
        self.outbound_failed = 0
        self.outbound_warm = 0  # of those made, how many took an idle connection (its handshake done before)
        self.outbound_reused = 0  # connections given back after a stream's clean end (meshd/2), for the next
        self.expiry = 0.0  # this node's certificate's notAfter (seconds since the epoch; 0: none)


MESH_STATS = MeshStats()


class MeshCollector:
    def __init__(self, stats: MeshStats = MESH_STATS) -> None:
        self.stats = stats

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        accepted = CounterMetricFamily("meshd_sidecar_mesh_gateway_connections",
                                       "Connections from other nodes' sidecars that reached a pod of this node.")
        accepted.add_metric([], s.accepted)
        refused = CounterMetricFamily("meshd_sidecar_mesh_gateway_refused",
                                      "Gateway connections refused: peer (its certificate), target (no pod of "
                                      "this node), connect (the pod did not answer).", labels=["reason"])
        for reason, value in s.refused.items():
            refused.add_metric([reason], value)
        active = GaugeMetricFamily("meshd_sidecar_mesh_gateway_active_connections",
                                   "Gateway connections open now (warm ones waiting for a CONNECT too).")
        active.add_metric([], s.active)
        outbound = CounterMetricFamily("meshd_sidecar_mesh_outbound_connections",
                                       "Connections to other nodes' gateways, by result.", labels=["result"])
        outbound.add_metric(["made"], s.outbound)
        outbound.add_metric(["failed"], s.outbound_failed)
        warm = CounterMetricFamily("meshd_sidecar_mesh_outbound_warm_connections",
                                   "Connections to other nodes' gateways that took an idle one (warmed, or given "
                                   "back by an earlier stream: its TLS handshake done before).")
        warm.add_metric([], s.outbound_warm)
        reused = CounterMetricFamily("meshd_sidecar_mesh_outbound_reused_connections",
                                     "Connections to other nodes' gateways given back for the next stream once "
                                     "theirs ended cleanly (meshd/2).")
        reused.add_metric([], s.outbound_reused)
        expiry = GaugeMetricFamily("meshd_sidecar_mesh_certificate_expiry_timestamp_seconds",
                                   "When this node's mesh certificate expires (0: none loaded).")
        expiry.add_metric([], s.expiry)
        yield from (accepted, refused, active, outbound, warm, reused, expiry)
