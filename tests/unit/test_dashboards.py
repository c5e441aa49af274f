"""The Grafana dashboards in grafana/: valid JSON that matches its generator, every query names only metrics that
meshd's code defines, never filters on `job`, and uses the `$datasource` variable; the provisioning files and the
example prometheus.yml are what a stock Grafana and Prometheus accept."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
TITLES = {"meshd — mesh overview", "meshd — service golden signals", "meshd — control plane"}
TEST_VALUES = {"namespace": "default", "service": "web", "deployment": "web"}


def load_builder() -> ModuleType:
    """grafana/build_dashboards.py as a module (it is a script, not part of the package)."""
    name = "meshd_grafana_build_dashboards"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, GRAFANA / "build_dashboards.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# --- which metrics the code defines --------------------------------------------------------------------------

_CONSTRUCTOR = re.compile(
    r"\b(Counter|Gauge|Histogram|Summary|Info|Enum|CounterMetricFamily|GaugeMetricFamily|HistogramMetricFamily"
    r"|SummaryMetricFamily|InfoMetricFamily|StateSetMetricFamily|GaugeHistogramMetricFamily)\(\s*"
    r"(?:name\s*=\s*)?[\"'](meshd_[a-z0-9_]+)[\"']"
)
_SERIES_SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "GaugeHistogram": ("_bucket", "_gsum", "_gcount"),
    "Summary": ("", "_sum", "_count", "_created"),
    "Info": ("_info",),
    "Gauge": ("",),
    "Enum": ("",),
    "StateSet": ("",),
}


def defined_families() -> dict[str, str]:
    """{family name: type} for every `meshd_` metric constructed in meshd/ and sidecar/ (grep, no imports)."""
    families: dict[str, str] = {}
    for package in ("meshd", "sidecar"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for kind, name in _CONSTRUCTOR.findall(path.read_text(encoding="utf-8")):
                kind = kind.removesuffix("MetricFamily")
                if kind == "Counter":
                    name = name.removesuffix("_total")
                families[name] = kind
    return families


def defined_series() -> set[str]:
    """Every series name the defined families expose, plus the process collector's and Prometheus' `up`."""
    from prometheus_client import ProcessCollector

    names = {"up"}
    for family, kind in defined_families().items():
        names.update(family + suffix for suffix in _SERIES_SUFFIXES[kind])
    names.update(
        sample.name for metric in ProcessCollector(registry=None).collect() for sample in metric.samples
    )
    return names


# --- which metrics a PromQL expression uses ------------------------------------------------------------------

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
             "bool", "inf", "nan", "atan2"}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (label matchers, durations, grouping clauses and functions removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def label_values_metric(query: str) -> str:
    match = re.fullmatch(
        r"\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{.*\})?\s*,\s*(\w+)\s*\)\s*", query
    )
    assert match, f"not a label_values(metric, label) query: {query}"
    return match.group(1)


# --- tests ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict]:
    return load_builder().load_dashboards()


def test_three_dashboards_parse_with_their_titles(dashboards: dict[str, dict]) -> None:
    assert {d["title"] for d in dashboards.values()} == TITLES
    assert len({d["uid"] for d in dashboards.values()}) == len(dashboards)
    for dash in dashboards.values():
        assert 36 <= dash["schemaVersion"] <= 41
        assert load_builder().panels(dash), dash["title"]


def test_the_json_is_what_the_generator_writes(dashboards: dict[str, dict]) -> None:
    builder = load_builder()
    assert set(dashboards) == set(builder.DASHBOARDS)
    for name, build in builder.DASHBOARDS.items():
        on_disk = (GRAFANA / "dashboards" / name).read_text(encoding="utf-8")
        assert on_disk == builder.render(build), f"{name} is stale: run python grafana/build_dashboards.py"


def test_the_inventory_finds_the_metrics_of_every_component() -> None:
    families = defined_families()
    for expected in ("meshd_deployment_replicas", "meshd_container_restarts", "meshd_reconcile_duration_seconds",
                     "meshd_probe", "meshd_dns_queries", "meshd_dns_answer_duration_seconds", "meshd_mdns_announcements",
                     "meshd_watch_subscribers", "meshd_sidecar_requests", "meshd_sidecar_request_duration_seconds"):  # fmt: skip
        assert expected in families, expected
    assert families["meshd_sidecar_request_duration_seconds"] == "Histogram"
    assert families["meshd_container_restarts"] == "Counter"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (service, le) (rate(a_bucket{service=~"$namespace/x", le!="1"}[$__rate_interval]))',
            {"a_bucket"},
        ),
        (
            "histogram_quantile(0.99, sum by (le) (rate(b_bucket[5m]))) / on (x) group_left (y) c",
            {"b_bucket", "c"},
        ),
        ('count(sum by (service) (d{state="ready"}) > 0) or vector(0)', {"d"}),
        ("up == bool 1 and process_open_fds offset 5m", {"up", "process_open_fds"}),
    ],
)
def test_metric_names_of_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_every_query_names_only_metrics_the_code_defines(dashboards: dict[str, dict]) -> None:
    builder, known = load_builder(), defined_series()
    unknown = []
    for file, dash in dashboards.items():
        for title, expr in builder.queries(dash):
            used = metric_names(expr)
            assert used, f"{file} / {title}: no metric in {expr}"
            unknown += [f"{file} / {title}: {name}" for name in sorted(used - known)]
        for name, query in builder.variable_queries(dash):
            metric = label_values_metric(query)
            if metric not in known:
                unknown.append(f"{file} / variable {name}: {metric}")
    assert not unknown, "metrics no code defines:\n" + "\n".join(unknown)


def test_no_query_filters_on_the_job_label(dashboards: dict[str, dict]) -> None:
    builder = load_builder()
    for dash in dashboards.values():
        exprs = [expr for _, expr in builder.queries(dash)] + [q for _, q in builder.variable_queries(dash)]
        for expr in exprs:
            assert not re.search(r"\bjob\s*(=|!=|=~|!~)", expr), expr


def test_every_panel_and_variable_uses_the_datasource_variable(dashboards: dict[str, dict]) -> None:
    builder = load_builder()
    for dash in dashboards.values():
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        source = variables["datasource"]
        assert (source["type"], source["query"]) == ("datasource", "prometheus")
        for var in variables.values():
            if var["type"] == "query":
                assert var["datasource"] == DATASOURCE, var["name"]
        for panel in builder.panels(dash):
            assert panel["datasource"] == DATASOURCE, panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target.get("datasource", DATASOURCE) == DATASOURCE, panel["title"]
                assert target["expr"].strip(), panel["title"]


def test_every_variable_a_query_uses_is_defined(dashboards: dict[str, dict]) -> None:
    builder = load_builder()
    for dash in dashboards.values():
        defined = {v["name"] for v in dash["templating"]["list"]} | set(builder.BUILTIN_VARIABLES)
        exprs = [expr for _, expr in builder.queries(dash)] + [q for _, q in builder.variable_queries(dash)]
        for expr in exprs:
            for name in re.findall(r"\$\{?(\w+)", expr):
                assert name in defined, f"{dash['title']}: ${name} in {expr}"


def test_panels_fit_the_grid_with_unique_ids(dashboards: dict[str, dict]) -> None:
    for dash in dashboards.values():
        ids = [panel["id"] for panel in dash["panels"]]
        assert len(ids) == len(set(ids)), dash["title"]
        for panel in dash["panels"]:
            pos = panel["gridPos"]
            assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]


def test_every_query_is_valid_promql(dashboards: dict[str, dict], tmp_path: Path) -> None:
    """promtool parses each query (variables substituted) as a recording rule."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    builder = load_builder()
    rules = [
        {"record": f"meshd:dashboard:{i}", "expr": builder.substitute(expr, TEST_VALUES)}
        for i, (_, expr) in enumerate(q for dash in dashboards.values() for q in builder.queries(dash))
    ]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_provisioning_files_are_what_grafana_reads() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert (source["name"], source["type"], source["access"]) == ("Prometheus", "prometheus", "proxy")
    assert source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/meshd.yml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_example_prometheus_config_uses_the_agents_http_sd() -> None:
    config = yaml.safe_load((GRAFANA / "prometheus.yml").read_text())
    urls = [sd["url"] for job in config["scrape_configs"] for sd in job.get("http_sd_configs", [])]
    assert urls == ["http://127.0.0.1:7700/v1/prometheus/targets"]
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    result = subprocess.run([promtool, "check", "config", str(GRAFANA / "prometheus.yml")],
                            check=False, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_meshd_metric_is_on_a_dashboard(dashboards: dict[str, dict]) -> None:
    """Everything meshd measures is visible: a new metric family needs a panel in grafana/build_dashboards.py."""
    builder = load_builder()
    shown = {
        name
        for dash in dashboards.values()
        for _, expr in builder.queries(dash)
        for name in metric_names(expr)
    }
    missing = []
    for family, kind in sorted(defined_families().items()):
        series = {family + suffix for suffix in _SERIES_SUFFIXES[kind]}
        if not series & shown:
            missing.append(f"{family} ({kind})")
    assert not missing, "metrics on no dashboard (add a panel in grafana/build_dashboards.py):\n" + "\n".join(
        missing
    )


# --- alerting rules ------------------------------------------------------------------------------------------

ALERTS = GRAFANA / "meshd-alerts.yml"
SICK = """\
      - series: 'up{job="anything", instance="a:1", meshd_component="sidecar"}'
        values: '0x12'
      - series: 'meshd_deployment_rollout_failed{instance="a:1", namespace="default", deployment="web"}'
        values: '1x12'
      - series: 'meshd_deployment_replicas{instance="a:1", namespace="default", deployment="web", state="desired"}'
        values: '3x12'
      - series: 'meshd_deployment_replicas{instance="a:1", namespace="default", deployment="web", state="available"}'
        values: '1x12'
      - series: 'meshd_container_restarts_total{instance="a:1", reason="crash"}'
        values: '0+1x12'
      - series: 'meshd_sidecar_requests_total{instance="b:2", service="default/web", method="GET", code_class="2xx"}'
        values: '0+60x12'
      - series: 'meshd_sidecar_requests_total{instance="b:2", service="default/web", method="GET", code_class="5xx"}'
        values: '0+60x12'
      - series: 'meshd_sidecar_endpoints{instance="b:2", service="default/web", state="ready"}'
        values: '0x12'
      - series: 'meshd_dns_queries_total{instance="a:1", qtype="A", rcode="SERVFAIL", transport="udp"}'
        values: '0+6x12'
      - series: 'meshd_docker_call_errors_total{instance="a:1", call="create"}'
        values: '0+3x12'
"""
HEALTHY = """\
      - series: 'up{job="anything", instance="a:1", meshd_component="sidecar"}'
        values: '1x12'
      - series: 'meshd_deployment_rollout_failed{instance="a:1", namespace="default", deployment="web"}'
        values: '0x12'
      - series: 'meshd_deployment_replicas{instance="a:1", namespace="default", deployment="web", state="desired"}'
        values: '3x12'
      - series: 'meshd_deployment_replicas{instance="a:1", namespace="default", deployment="web", state="available"}'
        values: '3x12'
      - series: 'meshd_container_restarts_total{instance="a:1", reason="crash"}'
        values: '0x12'
      - series: 'meshd_sidecar_requests_total{instance="b:2", service="default/web", method="GET", code_class="2xx"}'
        values: '0+60x12'
      - series: 'meshd_sidecar_requests_total{instance="b:2", service="default/web", method="GET", code_class="5xx"}'
        values: '0x12'
      - series: 'meshd_sidecar_endpoints{instance="b:2", service="default/web", state="ready"}'
        values: '2x12'
      - series: 'meshd_dns_queries_total{instance="a:1", qtype="A", rcode="SERVFAIL", transport="udp"}'
        values: '0x12'
      - series: 'meshd_docker_call_errors_total{instance="a:1", call="create"}'
        values: '0x12'
"""
# alert -> (labels, summary) expected at 10m on the SICK series
EXPECTED = {
    "MeshdTargetDown": (
        {"severity": "critical", "job": "anything", "instance": "a:1", "meshd_component": "sidecar"},
        "meshd sidecar at a:1 cannot be scraped",
    ),
    "MeshdRolloutFailed": (
        {"severity": "warning", "instance": "a:1", "namespace": "default", "deployment": "web"},
        "Deployment default/web exceeded its progress deadline",
    ),
    "MeshdDeploymentUnavailable": (
        {
            "severity": "warning",
            "instance": "a:1",
            "namespace": "default",
            "deployment": "web",
        },
        "Deployment default/web has 1 available replica(s), fewer than desired",
    ),
    "MeshdContainersRestarting": (
        {"severity": "warning", "instance": "a:1", "reason": "crash"},
        "10 container restarts (crash) in 10 minutes on a:1",
    ),
    "MeshdServiceSuccessRateLow": (
        {"severity": "warning", "service": "default/web"},
        "Service default/web answers only 50% of requests without a 5xx",
    ),
    "MeshdServiceNoReadyEndpoints": (
        {"severity": "warning", "service": "default/web"},
        "Service default/web has no ready endpoint the sidecar can use",
    ),
    "MeshdDockerCallsFailing": (
        {"severity": "warning", "instance": "a:1", "call": "create"},
        "Docker engine calls (create) from the agent at a:1 are failing",
    ),
    "MeshdDNSServerFailures": (
        {"severity": "warning", "instance": "a:1"},
        "meshd DNS at a:1 answers SERVFAIL",
    ),
}


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_alert_rules_name_only_defined_metrics_and_never_job() -> None:
    known = defined_series()
    for rule in alert_rules():
        assert metric_names(rule["expr"]) <= known, rule["alert"]
        assert not re.search(r"\bjob\s*(=|!=|=~|!~)", rule["expr"]), rule["alert"]
    assert {rule["alert"] for rule in alert_rules()} == set(EXPECTED)


def test_alerts_fire_on_a_sick_mesh_and_stay_quiet_on_a_healthy_one(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    cases = []
    for alert, (labels, summary) in EXPECTED.items():
        cases.append({"eval_time": "10m", "alertname": alert,
                      "exp_alerts": [{"exp_labels": labels, "exp_annotations": {"summary": summary}}]})  # fmt: skip
    quiet = [{"eval_time": "10m", "alertname": alert, "exp_alerts": []} for alert in EXPECTED]
    tests = [
        {"interval": "1m", "input_series": yaml.safe_load(SICK), "alert_rule_test": cases},
        {"interval": "1m", "input_series": yaml.safe_load(HEALTHY), "alert_rule_test": quiet},
    ]
    path = tmp_path / "alerts_test.yml"
    path.write_text(
        yaml.safe_dump({"rule_files": [str(ALERTS)], "evaluation_interval": "1m", "tests": tests})
    )
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
