"""Observability end to end: a real agent (with its node sidecar) runs a Deployment on Docker, a real Prometheus
finds the agent, the sidecar and the app through the agent's HTTP service discovery, traffic flows through the
Service address and a container is killed; then every query of every panel of every dashboard in grafana/, with
its variables substituted, must return data through Prometheus' HTTP API (no empty panel, no PromQL error).
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import remove_labelled
from tests.integration.agent_harness import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
NAME = "obs-web"
VALUES = {"namespace": "default", "service": NAME, "deployment": NAME, "datasource": ""}
TRAFFIC_SECONDS = 8.0

MANIFEST = f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {NAME}, namespace: default}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {NAME}}}}}
  template:
    metadata:
      labels: {{app: {NAME}}}
      annotations: {{prometheus.io/scrape: "true", prometheus.io/port: "8080", prometheus.io/path: /metrics}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: meshd/busybox:latest
        imagePullPolicy: IfNotPresent
        command: ["/bin/sh", "-c"]
        args:
        - |
          mkdir -p /www && echo ok > /www/healthz && echo hello > /www/index.html
          printf '# HELP obs_app_up The test app is up.\\n# TYPE obs_app_up gauge\\nobs_app_up 1\\n' > /www/metrics
          exec httpd -f -p 8080 -h /www
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe:
          httpGet: {{path: /healthz, port: http}}
          periodSeconds: 0.5
---
apiVersion: v1
kind: Service
metadata: {{name: {NAME}, namespace: default}}
spec:
  selector: {{app: {NAME}}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {NAME}, namespace: default}}
spec:
  rules:
  - host: {NAME}.example
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: {NAME}, port: {{number: 80}}}}}}}}
"""


def load_builder() -> ModuleType:
    name = "meshd_grafana_build_dashboards"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "grafana" / "build_dashboards.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def eventually(check: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, ValueError, KeyError, http.client.HTTPException) as error:
            last = error
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


def http_json(url: str, *, token: str, data: bytes | None = None, timeout: float = 10.0) -> Any:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/yaml"}
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET", headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.load(reply)


@dataclass
class Mesh:
    """The running scenario: addresses, and what the test did (so the assertions can say what they expect)."""

    api: str
    dns: str
    prometheus: str
    sidecar_metrics: str
    ingress_http: str
    agent_id: str
    state_dir: Path
    cluster_ip: str = ""
    traffic_start: float = 0.0
    requests_ok: int = 0
    requests_failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    dns_queries: int = 0
    killed: str = ""
    logs: dict[str, Path] = field(default_factory=dict)

    @property
    def token(self) -> str:
        """The agent's API token (it writes it before it serves)."""
        return (self.state_dir / "token").read_text().strip()

    def query(self, expr: str, **params: Any) -> Any:
        """Prometheus' HTTP API (`/api/v1/query` or, with start/end, `query_range`); returns `data`."""
        path = "query_range" if "start" in params else "query"
        body = urllib.parse.urlencode({"query": expr, **params}).encode()
        request = urllib.request.Request(f"{self.prometheus}/api/v1/{path}", data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                answer = json.load(reply)
        except urllib.error.HTTPError as error:
            answer = json.load(error)
        if answer.get("status") != "success":
            raise PromQLError(f"{answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)["result"]
        return float(result[0]["value"][1]) if result else None


class PromQLError(Exception):
    pass


def agent_command(api: str, dns: str, state_dir: Path, sidecar_metrics: str, ingress_http: str) -> list[str]:
    """`meshd agent` with private ports (through AgentOptions where the CLI has no --sidecar-metrics flag)."""
    cli = [sys.executable, "-c", "from meshd.cli.main import main; main()", "agent"]
    helptext = subprocess.run(
        [*cli, "--help"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    if "--sidecar-metrics" in helptext:
        return [*cli, "--api", api, "--dns", dns, "--state-dir", str(state_dir), "--mdns", "off",
                "--backoff-initial", "1", "--sidecar-metrics", sidecar_metrics, "--ingress-http", ingress_http,
                "--ingress-https", "off"]  # fmt: skip
    options = (
        f"api={api!r}, dns={dns!r}, state_dir={str(state_dir)!r}, mdns='off', backoff_initial=1.0, "
        f"sidecar_metrics={sidecar_metrics!r}"
    )
    return [sys.executable, "-c",
            f"import sys; from meshd.agent import AgentOptions, run_agent; sys.exit(run_agent(AgentOptions({options})))"]  # fmt: skip


def prometheus_config(api: str) -> str:
    # The job name is arbitrary on purpose: no dashboard may depend on it.
    return f"""\
global: {{scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 1s}}
rule_files: [{ROOT / "grafana" / "meshd-alerts.yml"}]
scrape_configs:
  - job_name: whatever-the-user-calls-it
    http_sd_configs:
      - url: http://{api}/v1/prometheus/targets
        refresh_interval: 1s
"""


def stop(process: subprocess.Popen[bytes], *, timeout: float = 20.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def traffic(mesh: Mesh, stop_event: threading.Event) -> None:
    """HTTP GETs through the Service address (keep-alive, reconnecting) and DNS queries, until stopped."""
    import dns.message
    import dns.query

    dns_host, dns_port = mesh.dns.rsplit(":", 1)
    conn: http.client.HTTPConnection | None = None
    last_dns = 0.0
    while not stop_event.is_set():
        try:
            if conn is None:
                conn = http.client.HTTPConnection(mesh.cluster_ip, 80, timeout=5)
            conn.request("GET", "/")
            reply = conn.getresponse()
            reply.read()
            if reply.status == 200:
                mesh.requests_ok += 1
            else:
                mesh.requests_failed += 1
                mesh.failures[f"HTTP {reply.status}"] = mesh.failures.get(f"HTTP {reply.status}", 0) + 1
        except Exception as error:  # noqa: BLE001 - counted and shown by the test, never kills the thread
            mesh.requests_failed += 1
            mesh.failures[repr(error)[:80]] = mesh.failures.get(repr(error)[:80], 0) + 1
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.05)
        now = time.monotonic()
        if now - last_dns >= 0.2:
            last_dns = now
            try:  # through the Ingress, by its host: the Ingress panels' data
                request = urllib.request.Request(f"http://{mesh.ingress_http}/", headers={"Host": f"{NAME}.example"})
                with urllib.request.urlopen(request, timeout=2) as reply:
                    reply.read()
            except Exception as error:  # noqa: BLE001 - counted and shown by the test
                key = f"Ingress {error!r}"[:80]
                mesh.failures[key] = mesh.failures.get(key, 0) + 1
            for qname, qtype in ((f"{NAME}.default.svc.cluster.local.", "A"),
                                 (f"_http._tcp.{NAME}.default.svc.cluster.local.", "SRV")):  # fmt: skip
                try:
                    dns.query.udp(
                        dns.message.make_query(qname, qtype), dns_host, port=int(dns_port), timeout=2
                    )
                    mesh.dns_queries += 1
                except Exception as error:  # noqa: BLE001 - counted and shown by the test
                    key = f"DNS {error!r}"[:80]
                    mesh.failures[key] = mesh.failures.get(key, 0) + 1
        time.sleep(0.01)
    if conn is not None:
        conn.close()


def app_containers(docker_client: Any, agent_id: str) -> list[Any]:
    return docker_client.containers.list(
        filters={"label": [f"io.meshd.agent={agent_id}", f"io.meshd.owner={NAME}", "io.meshd.container=web"]}
    )


def restart_count(mesh: Mesh) -> int:
    pods = http_json(f"http://{mesh.api}/api/v1/namespaces/default/pods?labelSelector=app={NAME}",
                     token=mesh.token)["items"]
    return sum(s["restartCount"] for p in pods for s in p["status"].get("containerStatuses", []))


def ready_replicas(mesh: Mesh) -> int:
    status = http_json(f"http://{mesh.api}/apis/apps/v1/namespaces/default/deployments/{NAME}", token=mesh.token).get(
        "status", {}
    )
    return int(status.get("readyReplicas") or 0)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, docker_client: Any, busybox_image: str, pause_image: str
         ) -> Iterator[Mesh]:  # fmt: skip
    """The whole scenario, once for the module's tests."""
    prometheus_bin = shutil.which("prometheus")
    if prometheus_bin is None:
        pytest.skip("prometheus not installed (Debian package prometheus; CI installs it)")
    tmp = tmp_path_factory.mktemp("observability")
    state_dir = tmp / "state"
    state_dir.mkdir()
    api, dns_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port(udp=True)}"
    mesh = Mesh(
        api=api,
        dns=dns_addr,
        prometheus=f"http://127.0.0.1:{free_port()}",
        sidecar_metrics=f"127.0.0.1:{free_port()}",
        ingress_http=f"127.0.0.1:{free_port()}",
        agent_id=hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12],
        state_dir=state_dir,
    )
    mesh.logs = {
        "agent": tmp / "agent.log",
        "prometheus": tmp / "prometheus.log",
        "sidecar": state_dir / "sidecar.log",
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with open(mesh.logs["agent"], "wb") as log:
            processes.append(subprocess.Popen(agent_command(api, dns_addr, state_dir, mesh.sidecar_metrics,
                                                            mesh.ingress_http),
                                              stdout=log, stderr=subprocess.STDOUT, cwd=ROOT))  # fmt: skip
        eventually(lambda: urllib.request.urlopen(f"http://{api}/healthz", timeout=2).status == 200,
                   timeout=60, what="the agent answers /healthz")  # fmt: skip
        applied = http_json(f"http://{api}/v1/apply", data=MANIFEST.encode(), token=mesh.token)
        assert {r["kind"] for r in applied["results"]} == {"Deployment", "Service", "Ingress"}, applied
        config = tmp / "prometheus.yml"
        config.write_text(prometheus_config(api))
        with open(mesh.logs["prometheus"], "wb") as log:
            processes.append(subprocess.Popen(
                [prometheus_bin, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                 f"--web.listen-address={mesh.prometheus.removeprefix('http://')}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
        eventually(lambda: ready_replicas(mesh) == 2, timeout=90, what="2 ready replicas")
        service = http_json(f"http://{api}/api/v1/namespaces/default/services/{NAME}", token=mesh.token)
        mesh.cluster_ip = service["spec"]["clusterIP"]
        eventually(lambda: urllib.request.urlopen(f"{mesh.prometheus}/-/ready", timeout=2).status == 200,
                   timeout=60, what="Prometheus is ready")  # fmt: skip
        eventually(lambda: mesh.value('count(up{meshd_component=~"agent|sidecar|pod"} == 1)') == 4,
                   timeout=60, what="Prometheus scrapes the agent, the sidecar and both pods")  # fmt: skip

        mesh.traffic_start = time.time()
        stop_event = threading.Event()
        worker = threading.Thread(target=traffic, args=(mesh, stop_event), daemon=True)
        worker.start()
        try:
            time.sleep(TRAFFIC_SECONDS)
            victim = app_containers(docker_client, mesh.agent_id)[0]
            mesh.killed = victim.name
            subprocess.run(["docker", "kill", victim.id], check=True, capture_output=True, timeout=30)
            eventually(lambda: restart_count(mesh) >= 1 and ready_replicas(mesh) == 2, timeout=60,
                       what="the killed container restarted and is ready again")  # fmt: skip
            time.sleep(TRAFFIC_SECONDS)
        finally:
            stop_event.set()
            worker.join(10)
        time.sleep(2.5)  # two more scrapes see the last requests
        yield mesh
    finally:
        for process in processes[1:]:
            stop(process)
        if processes:
            try:
                http_json(f"http://{api}/v1/delete", data=MANIFEST.encode(), token=mesh.token)
                eventually(lambda: not app_containers(docker_client, mesh.agent_id), timeout=30,
                           what="the test's pods are gone")  # fmt: skip
            except (OSError, AssertionError, ValueError):
                pass
            stop(processes[0])
        _stop_leftover_sidecar(state_dir)
        remove_labelled(docker_client, mesh.agent_id)


def _stop_leftover_sidecar(state_dir: Path) -> None:
    """The agent stops its sidecar on SIGTERM; if it was killed instead, the recorded process goes here."""
    record = state_dir / "sidecar.json"
    try:
        pid = int(json.loads(record.read_text())["pid"])
        if f"MESHD_SIDECAR_OF={state_dir.resolve()}".encode() in Path(f"/proc/{pid}/environ").read_bytes():
            os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError, KeyError):
        pass


def has_data(result: list[dict[str, Any]]) -> bool:
    """Some series of a range query has a value that is a number (what Grafana draws)."""
    return any(not math.isnan(float(value)) for series in result for _, value in series.get("values", []))


@dataclass(frozen=True)
class PanelQuery:
    file: str
    title: str
    expr: str  # variables substituted
    instant: bool  # the panel asks for the value now (tables), else a range

    def __str__(self) -> str:
        return f"{self.file.removeprefix('meshd-').removesuffix('.json')}/{self.title}/{self.expr[:40]}"


def panel_queries() -> list[PanelQuery]:
    """Every target of every panel in grafana/, as Grafana would send it."""
    builder = load_builder()
    return [
        PanelQuery(
            file, panel["title"], builder.substitute(target["expr"], VALUES), bool(target.get("instant"))
        )
        for file, dash in builder.load_dashboards().items()
        for panel in builder.panels(dash)
        for target in panel["targets"]
    ]


def run_panel_query(mesh: Mesh, query: PanelQuery) -> list[dict[str, Any]]:
    """The series Prometheus returns: an instant query at the end of the scenario, or a range over it."""
    end = time.time()
    if query.instant:
        data = mesh.query(query.expr, time=f"{end:.3f}")
        assert data["resultType"] == "vector"
        return [{"metric": s["metric"], "values": [s["value"]]} for s in data["result"]]
    data = mesh.query(query.expr, start=f"{mesh.traffic_start:.3f}", end=f"{end:.3f}", step="1s")
    assert data["resultType"] == "matrix"
    return data["result"]


def test_prometheus_scrapes_agent_sidecar_and_app_through_http_sd(mesh: Mesh) -> None:
    targets = mesh.query('up{meshd_component=~"agent|sidecar|pod"}')["result"]
    by_component: dict[str, list[str]] = {}
    for series in targets:
        by_component.setdefault(series["metric"]["meshd_component"], []).append(series["metric"]["instance"])
    assert by_component["agent"] == [mesh.api]
    assert by_component["sidecar"] == [mesh.sidecar_metrics]
    assert len(by_component["pod"]) == 2
    apps = mesh.query("obs_app_up")["result"]
    assert {s["metric"]["namespace"] for s in apps} == {"default"}
    assert all(s["metric"]["pod"].startswith(f"{NAME}-") for s in apps)


@pytest.mark.parametrize("component", ["agent", "sidecar"])
def test_live_metrics_pass_promtool(mesh: Mesh, component: str) -> None:
    """`promtool check metrics` on what the running agent and sidecar serve, after traffic and a restart."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus; CI installs it)")
    address = mesh.api if component == "agent" else mesh.sidecar_metrics
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as reply:
        exposition = reply.read()
    assert b"meshd_" in exposition
    result = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=60,
                            check=False)  # fmt: skip
    problems = (result.stdout + result.stderr).decode().strip()
    assert result.returncode == 0 and not problems, f"{component} /metrics: {problems}"


def test_alert_rules_evaluate_on_live_data(mesh: Mesh) -> None:
    """grafana/meshd-alerts.yml loads into the real Prometheus and every rule evaluates without error."""
    with urllib.request.urlopen(f"{mesh.prometheus}/api/v1/rules", timeout=10) as reply:
        groups = json.load(reply)["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 7
    assert all(rule["health"] == "ok" for rule in rules), [(r["name"], r.get("lastError")) for r in rules]


def test_prometheus_saw_the_traffic_and_the_restart(mesh: Mesh) -> None:
    assert mesh.requests_ok > 0, f"no request succeeded through {mesh.cluster_ip}: {mesh.failures}"
    assert mesh.dns_queries > 0, f"no DNS query answered: {mesh.failures}"
    proxied = mesh.value(f'sum(meshd_sidecar_requests_total{{service="default/{NAME}", code_class="2xx"}})')
    assert proxied is not None and proxied >= mesh.requests_ok * 0.9, (proxied, mesh.requests_ok)
    restarts = mesh.value("sum(meshd_container_restarts_total)")
    assert restarts is not None and restarts >= 1
    answered = mesh.value('sum(meshd_dns_queries_total{rcode="NOERROR"})')
    assert answered is not None and answered >= mesh.dns_queries * 0.9


@pytest.mark.parametrize("query", panel_queries(), ids=str)
def test_every_panel_query_returns_data(mesh: Mesh, query: PanelQuery) -> None:
    try:
        result = run_panel_query(mesh, query)
    except PromQLError as error:
        pytest.fail(f"{query.file} / {query.title}: {query.expr}\n{error}")
    assert has_data(result), (
        f"{query.file} / {query.title}: no data for {query.expr}\n{json.dumps(result)[:600]}"
    )


def test_variables_offer_the_tests_names(mesh: Mesh) -> None:
    """Each `label_values` variable, queried as Grafana does, offers the test's namespace, Service, Deployment."""
    builder = load_builder()
    for file, dash in builder.load_dashboards().items():
        regexes = {v["name"]: v.get("regex", "") for v in dash["templating"]["list"]}
        for name, query in builder.variable_queries(dash):
            match = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", builder.substitute(query, VALUES))
            assert match, query
            selector, label = match.groups()
            url = f"{mesh.prometheus}/api/v1/series?" + urllib.parse.urlencode({"match[]": selector})
            with urllib.request.urlopen(url, timeout=30) as reply:
                series = json.load(reply)["data"]
            values = {s[label] for s in series if label in s}
            if regexes[name]:
                pattern = re.compile(regexes[name][1:-1])  # Grafana writes /regex/
                values = {
                    m.group(1) if m.groups() else m.group(0) for v in values if (m := pattern.search(v))
                }
            assert VALUES[name] in values, f"{file}: ${name} offers {sorted(values)}"


def series_maxima(result: list[dict[str, Any]]) -> list[float]:
    """The largest number each series of a range query reached (NaN points skipped)."""
    maxima = []
    for series in result:
        numbers = [float(v) for _, v in series.get("values", []) if not math.isnan(float(v))]
        if numbers:
            maxima.append(max(numbers))
    return maxima


# Panels that must show what the scenario did, not only zeros: (file, panel title) -> (what, check on maxima).
SHOWS_THE_SCENARIO: dict[tuple[str, str], tuple[str, Callable[[list[float]], bool]]] = {
    ("meshd-golden-signals.json", "Request rate"): ("requests flowed", lambda m: max(m) > 0),
    ("meshd-golden-signals.json", "Success rate"): ("most requests succeeded", lambda m: max(m) > 0.5),
    ("meshd-golden-signals.json", "Latency"): ("latency percentiles are positive", lambda m: min(m) > 0),
    ("meshd-golden-signals.json", "Attempts by endpoint"): (
        "both replicas served", lambda m: sum(1 for v in m if v > 0) >= 2),
    ("meshd-golden-signals.json", "Endpoints ready and ejected"): ("2 ready endpoints", lambda m: max(m) == 2),
    ("meshd-control-plane.json", "Replicas: desired vs available"): ("2 desired and available",
                                                                     lambda m: m == [2.0, 2.0]),
    ("meshd-control-plane.json", "Container restarts by reason"): ("the kill shows", lambda m: max(m) > 0),
    ("meshd-control-plane.json", "Reconcile rate"): ("the controller reconciled", lambda m: max(m) > 0),
    ("meshd-control-plane.json", "Probe results"): ("readiness probes ran", lambda m: max(m) > 0),
    ("meshd-control-plane.json", "DNS queries by rcode"): ("DNS answered", lambda m: max(m) > 0),
    ("meshd-control-plane.json", "DNS answer latency"): ("DNS latency is positive", lambda m: min(m) > 0),
    ("meshd-overview.json", "Running pods"): ("2 pods ran", lambda m: max(m) >= 2),
    ("meshd-overview.json", "Requests by Service"): ("requests flowed", lambda m: max(m) > 0),
    ("meshd-overview.json", "Services"): ("the Service's row has numbers", lambda m: len(m) == 6 and min(m[:4]) > 0),
}  # fmt: skip


@pytest.mark.parametrize(("file", "title"), sorted(SHOWS_THE_SCENARIO), ids=lambda v: str(v)[:40])
def test_key_panels_show_the_scenario(mesh: Mesh, file: str, title: str) -> None:
    what, check = SHOWS_THE_SCENARIO[(file, title)]
    queries = [query for query in panel_queries() if (query.file, query.title) == (file, title)]
    assert queries, f"{file} has no panel {title!r}"
    maxima = []
    for query in queries:
        maxima += series_maxima(run_panel_query(mesh, query))
    assert maxima and check(maxima), f"{file} / {title}: expected {what}; series maxima {maxima}"
