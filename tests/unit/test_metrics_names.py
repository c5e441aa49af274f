"""The agent's and the sidecar's /metrics follow Prometheus' naming rules (`promtool check metrics` is clean), and
every series a dashboard in grafana/ shows exists as soon as the process exposes its metrics.

Nothing heavy starts: the agent's registry is filled by importing the modules that define metrics and feeding the
scrape-time collectors small fakes; the sidecar's by its own `make_registry` over a ServiceTable with one Service.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import pkgutil
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "meshd/busybox:latest"}]},
        },
    },
}


def import_metric_modules(package: str) -> list[str]:
    """Imports every module of `package` whose source mentions prometheus_client or the agent REGISTRY."""
    imported = []
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        spec = importlib.util.find_spec(info.name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        source = Path(spec.origin).read_text(encoding="utf-8")
        if "prometheus_client" in source or "REGISTRY" in source:
            importlib.import_module(info.name)
            imported.append(info.name)
    return imported


def controller_with_a_deployment(tmp: Path) -> Any:
    """A real Controller, never started (no containers run), that holds one Deployment."""
    from meshd.controller.loop import Controller, NodeCapacity
    from meshd.driver.process import ProcessDriver
    from meshd.registry import Registry

    controller = Controller(
        driver=ProcessDriver(agent_id="metrics-names", state_dir=tmp / "process"),
        registry=Registry(node="test"),
        state_dir=tmp / "state",
        agent_id="metrics-names",
        service_pool="127.214.0.0/16",
        capacity=NodeCapacity(cpu_millicores=1000, memory_bytes=1 << 30),
    )
    asyncio.run(controller.apply(yaml.safe_dump(DEPLOYMENT)))
    return controller


@pytest.fixture(scope="module")
def agent_exposition(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import_metric_modules("meshd")
    from meshd.controller.metrics import register_controller_metrics
    from meshd.dns.metrics import DnsStats
    from meshd.metrics import REGISTRY

    stats = DnsStats()  # registers the DNS collector, as a DnsServer does
    stats.observe(50_000)
    collector = register_controller_metrics(
        controller_with_a_deployment(tmp_path_factory.mktemp("controller"))
    )
    try:
        yield generate_latest(REGISTRY).decode()
    finally:
        REGISTRY.unregister(collector)
        del stats


def sidecar_registry() -> CollectorRegistry:
    """The sidecar's registry over a table with one Service of two ready endpoints and one proxied request."""
    from meshd.model.endpoints import Endpoint, PortInfo, Reset, ServiceInfo, ServiceKey
    from sidecar.metrics import make_registry
    from sidecar.services import OUT_SUCCESS, ServiceTable

    table = ServiceTable(clock=lambda: 100.0)
    key = ServiceKey("default", "web")
    info = ServiceInfo(key, "10.213.128.1", (PortInfo("http", 80, 8080),))
    table.apply(Reset(info, tuple(Endpoint(f"web-{i}", f"10.213.0.{i}", {"http": 8080}) for i in (2, 3))))
    state = table.get(key)
    state.stats.observe(0, 200, 0.003)
    state.record(state.endpoints["web-2"], OUT_SUCCESS)
    registry = make_registry(table)
    # ... and its Ingress, one rule that routed one request (as sidecar/main.py registers it)
    from meshd.model.ingress import IngressBackend, IngressRoute, IngressTable
    from sidecar.ingress.listener import IngressCollector, IngressServer
    from sidecar.proxy import ProxyOptions

    ingress = IngressServer(table, options=ProxyOptions(), http=("127.0.0.1", 0), https=None)
    ingress.update(IngressTable(routes=(IngressRoute("", "/", "Prefix", IngressBackend("default", "web", 80),
                                                     "default/web"),)))
    assert ingress.listeners[0].route(b"web.example.com", b"/") is not None
    registry.register(IngressCollector(ingress))  # type: ignore[arg-type]
    return registry


@pytest.fixture(scope="module")
def sidecar_exposition() -> str:
    pytest.importorskip("sidecar.metrics", reason="the sidecar's metrics module has not landed")
    return generate_latest(sidecar_registry()).decode()


def promtool_check(exposition: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus; CI installs it)")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        f"promtool check metrics (exit {result.returncode}):\n{result.stdout}{result.stderr}"
    )


def series_names(exposition: str) -> set[str]:
    return {sample.name for family in text_string_to_metric_families(exposition) for sample in family.samples}


def dashboard_metric_names() -> set[str]:
    """Every metric the dashboards query (with test_dashboards' expression reader)."""
    name = "meshd_test_dashboards"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tests/unit/test_dashboards.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    reader: ModuleType = sys.modules[name]
    builder = reader.load_builder()
    return {
        metric
        for dash in builder.load_dashboards().values()
        for _, expr in builder.queries(dash)
        for metric in reader.metric_names(expr)
    }


def test_agent_metrics_pass_promtool(agent_exposition: str) -> None:
    assert "meshd_deployment_replicas{" in agent_exposition
    promtool_check(agent_exposition)


def test_sidecar_metrics_pass_promtool(sidecar_exposition: str) -> None:
    assert "meshd_sidecar_requests_total{" in sidecar_exposition
    promtool_check(sidecar_exposition)


def test_every_agent_metric_is_prefixed(agent_exposition: str) -> None:
    allowed = ("meshd_", "process_", "python_")
    assert all(name.startswith(allowed) for name in series_names(agent_exposition)), sorted(
        name for name in series_names(agent_exposition) if not name.startswith(allowed)
    )


def test_every_sidecar_metric_is_prefixed(sidecar_exposition: str) -> None:
    allowed = ("meshd_sidecar_", "process_", "python_")
    assert all(name.startswith(allowed) for name in series_names(sidecar_exposition))


def test_every_series_a_dashboard_shows_exists_from_start(
    agent_exposition: str, sidecar_exposition: str
) -> None:
    exposed = series_names(agent_exposition) | series_names(sidecar_exposition) | {"up"}
    missing = sorted(dashboard_metric_names() - exposed)
    assert not missing, f"dashboard metrics absent from a fresh agent's or sidecar's /metrics: {missing}"
