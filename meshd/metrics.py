"""The agent's Prometheus registry: every `meshd_` metric registers here and `/metrics` exposes it."""

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)
