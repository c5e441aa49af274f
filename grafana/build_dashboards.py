"""Writes grafana/dashboards/*.json: `python grafana/build_dashboards.py` (the JSON files are committed).

One place defines every panel and its PromQL, so the three dashboards share one style. Rules the unit tests
check: every query names only metrics meshd defines, no query filters on the `job` label (the user names jobs),
every panel and target uses the `$datasource` variable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
SCHEMA_VERSION = 39


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # timeseries | stat | table (one row per label set, a column per query)
    description: str = ""
    width: int = 12
    height: int = 8
    stack: bool = False
    min: float | None = 0
    max: float | None = None
    overrides: tuple[dict[str, Any], ...] = field(default=())
    columns: tuple[tuple[str, str], ...] = ()  # table: (header, unit) of each query's value column


def q(expr: str, legend: str = "") -> Query:
    return Query(" ".join(expr.split()), legend)


def hq(quantile: float, bucket_metric: str, selector: str, by: str) -> Query:
    """histogram_quantile over the rate of a `_bucket` series, summed by `by` (plus `le`)."""
    return q(
        f"histogram_quantile({quantile}, sum by ({by + ', ' if by else ''}le) "
        f"(rate({bucket_metric}{selector}[{RATE}])))",
        f"{'{{' + by.split(',')[0].strip() + '}} ' if by else ''}p{int(quantile * 100)}",
    )


def row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def variable_datasource() -> dict[str, Any]:
    return {
        "name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
        "current": {}, "hide": 0, "includeAll": False, "multi": False, "options": [], "refresh": 1,
        "regex": "", "skipUrlSync": False,
    }  # fmt: skip


def variable_query(name: str, label: str, query: str, *, regex: str = "") -> dict[str, Any]:
    """A multi-value `label_values` variable with an All option matching everything."""
    return {
        "name": name, "label": label, "type": "query", "datasource": DATASOURCE,
        "definition": query, "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "current": {}, "hide": 0, "includeAll": True, "allValue": ".*", "multi": True, "options": [],
        "refresh": 2, "regex": regex, "skipUrlSync": False, "sort": 1,
    }  # fmt: skip


def panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    table = panel.kind == "table"
    targets = [
        {"datasource": DATASOURCE, "expr": query.expr, "legendFormat": query.legend or "__auto",
         "range": not table, "instant": table, "editorMode": "code", "refId": chr(ord("A") + i),
         **({"format": "table"} if table else {})}
        for i, query in enumerate(panel.queries)
    ]  # fmt: skip
    defaults: dict[str, Any] = {"unit": panel.unit, "color": {"mode": "palette-classic"}}
    if panel.min is not None:
        defaults["min"] = panel.min
    if panel.max is not None:
        defaults["max"] = panel.max
    out: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": list(panel.overrides)},
    }
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if panel.stack else 0, "showPoints": "never",
            "spanNulls": False, "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"},
        }  # fmt: skip
        out["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif table:
        columns = {f"Value #{chr(ord('A') + i)}": column for i, column in enumerate(panel.columns)}
        out["fieldConfig"]["overrides"] += [
            {"matcher": {"id": "byName", "options": name},
             "properties": [{"id": "unit", "value": unit}, {"id": "decimals", "value": 2}]}
            for name, (_, unit) in columns.items()
        ]  # fmt: skip
        out["transformations"] = [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True},
                "renameByName": {name: header for name, (header, _) in columns.items()},
            }},
        ]  # fmt: skip
        out["options"] = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}
    else:
        defaults["color"] = {"mode": "thresholds"}
        defaults["thresholds"] = {"mode": "absolute", "steps": [{"color": "green", "value": None}]}
        out["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value", "graphMode": "area", "justifyMode": "auto", "orientation": "auto",
            "textMode": "auto",
        }  # fmt: skip
    return out


def layout(sections: list[tuple[str, list[Panel]]]) -> list[dict[str, Any]]:
    """Rows of panels flowing left to right on Grafana's 24-column grid."""
    panels: list[dict[str, Any]] = []
    next_id, y = 1, 0
    for title, section in sections:
        header = row(title)
        header["id"], header["gridPos"] = next_id, {"h": 1, "w": 24, "x": 0, "y": y}
        panels.append(header)
        next_id, y, x, line_height = next_id + 1, y + 1, 0, 0
        for panel in section:
            if x + panel.width > 24:
                x, y, line_height = 0, y + line_height, 0
            panels.append(panel_json(panel, next_id, x, y))
            next_id += 1
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return panels


ANNOTATIONS = {
    "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
    "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
}  # fmt: skip
LINKS = {
    "title": "meshd", "type": "dashboards", "tags": ["meshd"], "asDropdown": True, "includeVars": False,
    "keepTime": True, "icon": "external link", "targetBlank": False, "tooltip": "", "url": "",
}  # fmt: skip


def dashboard(*, uid: str, title: str, description: str, tags: list[str], variables: list[dict[str, Any]],
              sections: list[tuple[str, list[Panel]]]) -> dict[str, Any]:  # fmt: skip
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["meshd", *tags],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {"list": [ANNOTATIONS]},
        "links": [LINKS],
        "templating": {"list": variables},
        "panels": layout(sections),
    }


# --- selectors -----------------------------------------------------------------------------------------------

SVC = '{service=~"$namespace/$service"}'  # the sidecar labels a Service "namespace/name"
DEPLOY = '{namespace=~"$namespace", deployment=~"$deployment"}'


def svc(extra: str = "") -> str:
    return SVC if not extra else SVC[:-1] + ", " + extra + "}"


def deploy(extra: str = "") -> str:
    return DEPLOY if not extra else DEPLOY[:-1] + ", " + extra + "}"


SERVICE_VARIABLES = [
    variable_datasource(),
    variable_query("namespace", "Namespace", "label_values(meshd_sidecar_requests_total, service)",
                   regex="/^([^/]+)\\//"),
    variable_query("service", "Service", 'label_values(meshd_sidecar_requests_total{service=~"$namespace/.*"}, service)',
                   regex="/^[^/]+\\/(.+)$/"),
]  # fmt: skip
DEPLOYMENT_VARIABLES = [
    variable_datasource(),
    variable_query("namespace", "Namespace", "label_values(meshd_deployment_replicas, namespace)"),
    variable_query("deployment", "Deployment",
                   'label_values(meshd_deployment_replicas{namespace=~"$namespace"}, deployment)'),
]  # fmt: skip

SVC_NOT_5XX = svc('code_class!="5xx"')
DEPLOY_DESIRED = deploy('state="desired"')
DEPLOY_AVAILABLE = deploy('state="available"')
DEPLOY_OTHER = deploy('state=~"current|updated|ready"')
SUCCESS_RATE = (
    f"sum by (service) (rate(meshd_sidecar_requests_total{SVC_NOT_5XX}[{RATE}])) "
    f"/ sum by (service) (rate(meshd_sidecar_requests_total{SVC}[{RATE}]))"
)


def overview() -> dict[str, Any]:
    stats = [
        Panel("Services with ready endpoints", (q('count(sum by (service) (meshd_sidecar_endpoints{state="ready"}) > 0) or vector(0)'),),
              kind="stat", width=4, height=4, description="Services the node's sidecar can send traffic to."),
        Panel("Deployments rolled out", (q("sum(meshd_deployment_rollout_complete)"),), kind="stat", width=4, height=4,
              description="Deployments whose latest rollout is complete."),
        Panel("Deployments failing", (q("sum(meshd_deployment_rollout_failed)"),), kind="stat", width=4, height=4,
              description="Deployments whose rollout exceeded progressDeadlineSeconds."),
        Panel("Running pods", (q('sum(meshd_pods{phase="Running"})'),), kind="stat", width=4, height=4),
        Panel("Request rate", (q(f"sum(rate(meshd_sidecar_requests_total[{RATE}]))"),), unit="reqps", kind="stat",
              width=4, height=4, description="Requests per second through the node's sidecar, all Services."),
        Panel("Success rate", (q(f'sum(rate(meshd_sidecar_requests_total{{code_class!="5xx"}}[{RATE}])) '
                                 f"/ sum(rate(meshd_sidecar_requests_total[{RATE}]))"),),
              unit="percentunit", kind="stat", width=4, height=4, max=1,
              description="Share of proxied requests answered without a 5xx, all Services."),
    ]  # fmt: skip
    services = [
        Panel(
            "Services",
            (
                q(f"sum by (service) (rate(meshd_sidecar_requests_total[{RATE}]))"),
                q(
                    f'sum by (service) (rate(meshd_sidecar_requests_total{{code_class!="5xx"}}[{RATE}])) '
                    f"/ sum by (service) (rate(meshd_sidecar_requests_total[{RATE}]))"
                ),
                hq(0.5, "meshd_sidecar_request_duration_seconds_bucket", "", "service"),
                hq(0.99, "meshd_sidecar_request_duration_seconds_bucket", "", "service"),
                q('sum by (service) (meshd_sidecar_endpoints{state="ready"})'),
                q('sum by (service) (meshd_sidecar_endpoints{state="ejected"})'),
            ),
            kind="table",
            width=24,
            height=7,
            min=None,
            columns=(
                ("Requests/s", "reqps"),
                ("Success rate", "percentunit"),
                ("p50", "s"),
                ("p99", "s"),
                ("Ready endpoints", "short"),
                ("Ejected", "short"),
            ),
            description="Every Service the node's sidecar proxies: the golden signals now, and its endpoints.",
        ),
    ]
    traffic = [
        Panel("Requests by Service", (q(f"sum by (service) (rate(meshd_sidecar_requests_total[{RATE}]))", "{{service}}"),),
              unit="reqps", width=8),
        Panel("Success rate by Service", (q(
            f'sum by (service) (rate(meshd_sidecar_requests_total{{code_class!="5xx"}}[{RATE}])) '
            f"/ sum by (service) (rate(meshd_sidecar_requests_total[{RATE}]))", "{{service}}"),),
              unit="percentunit", width=8, max=1),
        Panel("p99 latency by Service", (hq(0.99, "meshd_sidecar_request_duration_seconds_bucket", "", "service"),),
              unit="s", width=8),
        Panel("Endpoints by Service", (q("sum by (service, state) (meshd_sidecar_endpoints)", "{{service}} {{state}}"),),
              width=8, description="Ready endpoints in the sidecar's balancers, and those ejected as outliers."),
        Panel("Pods by phase", (q("sum by (phase) (meshd_pods)", "{{phase}}"),), width=8, stack=True),
        Panel("Container restarts by reason",
              (q(f"sum by (reason) (increase(meshd_container_restarts_total[{RATE}]))", "{{reason}}"),), width=8),
        Panel("Scrape targets up", (q('sum by (meshd_component) (up{meshd_component!=""})', "{{meshd_component}}"),), width=8,
              description="Targets up, by the meshd_component label (agent, sidecar, pod) that meshd's HTTP SD sets."),
        Panel("DNS queries", (q(f"sum by (rcode) (rate(meshd_dns_queries_total[{RATE}]))", "{{rcode}}"),),
              unit="reqps", width=8),
        Panel("Endpoint watch subscribers", (q("sum(meshd_watch_subscribers)", "watchers"),), width=8,
              description="Open endpoint watch streams: sidecars and clients following the registry."),
    ]  # fmt: skip
    return dashboard(
        uid="meshd-overview",
        title="meshd — mesh overview",
        description="The whole mesh at a glance: traffic, endpoints, workloads, restarts and discovery.",
        tags=["overview"],
        variables=[variable_datasource()],
        sections=[("Mesh", stats), ("Services", services), ("Traffic and workloads", traffic),
                  ("Opaque TCP and UDP", l4_panels()), ("Ingress", ingress_panels()),
                  ("Between nodes (mutual TLS)", mesh_panels())],
    )


def ingress_panels() -> list[Panel]:
    return [
        Panel("Ingress requests by rule", (q(
            f"sum by (ingress, host, path) (rate(meshd_sidecar_ingress_requests_total[{RATE}]))", "{{ingress}} {{host}}{{path}}"),),
              unit="reqps", width=12, description="Requests the node sidecar's Ingress routed, by Ingress, host and path "
              "(their codes and latency are the backend Service's, above)."),
        Panel("Answered by the Ingress itself", (q(
            f"sum by (code) (rate(meshd_sidecar_ingress_refused_total[{RATE}]))", "{{code}}"),),
              unit="reqps", width=12, description="404: no rule matched; 503: the backend Service has no such port; "
              "308: redirected to HTTPS."),
    ]  # fmt: skip


def mesh_panels() -> list[Panel]:
    """The mesh gateway and the connections to other nodes' gateways (sidecar/mesh/)."""
    return [
        Panel("Mesh gateway connections", (
            q(f"sum by (instance) (rate(meshd_sidecar_mesh_gateway_connections_total[{RATE}]))", "{{instance}} in/s"),
            q("sum by (instance) (meshd_sidecar_mesh_gateway_active_connections)", "{{instance}} open"),
            q(f"sum by (instance) (rate(meshd_sidecar_mesh_outbound_connections_total{{result=\"made\"}}[{RATE}]))",
              "{{instance}} out/s"),
            q(f"sum by (instance) (rate(meshd_sidecar_mesh_outbound_warm_connections_total[{RATE}]))",
              "{{instance}} out warm/s"),
            q(f"sum by (instance) (rate(meshd_sidecar_mesh_outbound_reused_connections_total[{RATE}]))",
              "{{instance}} given back/s"),), width=8,
              description="Connections from other nodes' sidecars that reached a pod here, open now (warm ones "
              "waiting for their CONNECT too), and made to other nodes' gateways per second (warm: their TLS "
              "handshake done before)."),
        Panel("Mesh refusals and failures", (
            q(f"sum by (reason) (rate(meshd_sidecar_mesh_gateway_refused_total[{RATE}]))", "refused: {{reason}}"),
            q(f"sum(rate(meshd_sidecar_mesh_outbound_connections_total{{result=\"failed\"}}[{RATE}]))",
              "outbound failed"),), width=8,
              description="peer: a certificate refused (revoked, deleted node, none); target: a CONNECT to no pod "
              "of the node; connect: the pod did not answer; outbound: this node could not reach a gateway."),
        Panel("Node certificate expires in", (
            q("min by (instance) (meshd_sidecar_mesh_certificate_expiry_timestamp_seconds) - time()",
              "{{instance}}"),), unit="s", width=8,
              description="Each node certificate is issued again at 2/3 of its life: a value falling towards 0 "
              "means rotation stopped (the store unreachable?)."),
    ]  # fmt: skip


def l4_panels() -> list[Panel]:
    """The per-connection codecs (sidecar/tcp.py, udp.py): connections, flows and bytes per Service."""
    return [
        Panel("TCP connections", (
            q(f"sum by (service) (rate(meshd_sidecar_tcp_connections_total[{RATE}]))", "{{service}} opened/s"),
            q("sum by (service) (meshd_sidecar_tcp_active_connections)", "{{service}} open"),), width=8,
              description="Opaque TCP client connections opened per second, and open now, per Service."),
        Panel("TCP bytes", (
            q(f"sum by (service, direction) (rate(meshd_sidecar_tcp_bytes_total[{RATE}]))",
              "{{service}} {{direction}}"),), unit="Bps", width=8,
              description="Bytes per second through opaque TCP connections, to the endpoints and to the clients."),
        Panel("UDP datagrams and flows", (
            q(f"sum by (service, direction) (rate(meshd_sidecar_udp_datagrams_total[{RATE}]))",
              "{{service}} {{direction}}"),
            q(f"sum by (service) (rate(meshd_sidecar_udp_bytes_total[{RATE}]))", "{{service}} bytes/s"),
            q("sum by (service) (meshd_sidecar_udp_flows)", "{{service}} flows"),), width=8,
              description="UDP datagrams (and bytes) per second each way, and client flows with an endpoint now."),
    ]  # fmt: skip


def golden_signals() -> dict[str, Any]:
    signals = [
        Panel("Request rate", (q(f"sum by (service) (rate(meshd_sidecar_requests_total{SVC}[{RATE}]))", "{{service}}"),),
              unit="reqps", width=8, description="Requests per second the sidecar proxied, per Service."),
        Panel("Success rate", (q(SUCCESS_RATE, "{{service}}"),), unit="percentunit", width=8, max=1,
              description="Share of requests answered without a 5xx (Linkerd's success rate), per Service."),
        Panel("Latency", (
            hq(0.5, "meshd_sidecar_request_duration_seconds_bucket", SVC, "service"),
            hq(0.95, "meshd_sidecar_request_duration_seconds_bucket", SVC, "service"),
            hq(0.99, "meshd_sidecar_request_duration_seconds_bucket", SVC, "service"),
        ), unit="s", width=8, description="p50, p95 and p99 of request duration as the client sees it, per Service."),
        Panel("Requests by status class", (
            q(f"sum by (code_class) (rate(meshd_sidecar_requests_total{SVC}[{RATE}]))", "{{code_class}}"),),
              unit="reqps", width=8, stack=True),
        Panel("Requests by method", (
            q(f"sum by (method) (rate(meshd_sidecar_requests_total{SVC}[{RATE}]))", "{{method}}"),),
              unit="reqps", width=8, stack=True),
        Panel("In-flight requests", (q(f"sum by (service) (meshd_sidecar_in_flight_requests{SVC})", "{{service}}"),),
              width=8),
    ]  # fmt: skip
    upstream = [
        Panel("Attempts by outcome", (
            q(f"sum by (service, outcome) (rate(meshd_sidecar_upstream_attempts_total{SVC}[{RATE}]))",
              "{{service}} {{outcome}}"),), unit="reqps", width=8,
              description="Attempts sent to endpoints (a request with retries makes several)."),
        Panel("Attempts by endpoint", (
            q(f"sum by (service, endpoint) (rate(meshd_sidecar_upstream_attempts_total{SVC}[{RATE}]))",
              "{{endpoint}}"),), unit="reqps", width=8, stack=True,
              description="How the balancer spreads attempts over the Service's endpoints."),
        Panel("Retries", (q(f"sum by (service) (rate(meshd_sidecar_retries_total{SVC}[{RATE}]))", "{{service}}"),),
              unit="reqps", width=8),
        Panel("Endpoints ready and ejected", (
            q(f"sum by (service, state) (meshd_sidecar_endpoints{SVC})", "{{service}} {{state}}"),), width=8,
              description="Ready endpoints the balancer uses, and those passive outlier detection ejected."),
        Panel("Ejections", (q(f"sum by (service) (increase(meshd_sidecar_ejections_total{SVC}[{RATE}]))",
                              "{{service}}"),), width=8),
        Panel("Client connections", (q("sum(meshd_sidecar_active_connections)", "open"),), width=8,
              description="Client connections open on the sidecar (all Services)."),
    ]  # fmt: skip
    h2 = [
        Panel("gRPC calls by status", (
            q(f"sum by (service, grpc_code) (rate(meshd_sidecar_grpc_responses_total{SVC}[{RATE}]))",
              "{{service}} {{grpc_code}}"),), unit="reqps", width=8,
              description="gRPC calls answered per second, by grpc-status (trailers or trailers-only)."),
        Panel("HTTP/2 connections and streams", (
            q("sum by (side) (meshd_sidecar_h2_connections)", "{{side}} connections"),
            q("sum(meshd_sidecar_h2_streams)", "streams in flight"),
            q("count by (codec) (meshd_sidecar_h2_codec_info)", "sidecars on {{codec}}"),), width=8,
              description="Client and pooled upstream HTTP/2 connections; client streams being proxied; sidecars "
                          "by HTTP/2 codec (nghttp2, or the pure-Python h2 fallback)."),
        Panel("HTTP/2 protocol errors", (
            q(f"sum(increase(meshd_sidecar_h2_protocol_errors_total[{RATE}]))", "GOAWAY"),), width=8,
              description="Client connections closed with GOAWAY because they broke HTTP/2."),
    ]  # fmt: skip
    return dashboard(
        uid="meshd-golden-signals",
        title="meshd — service golden signals",
        description="Per-Service request rate, success rate and latency from the sidecars, with retries and ejections.",
        tags=["services"],
        variables=SERVICE_VARIABLES,
        sections=[("Golden signals", signals), ("Upstream: endpoints, retries, ejections", upstream),
                  ("HTTP/2 and gRPC", h2)],
    )


def control_plane() -> dict[str, Any]:
    workloads = [
        Panel("Replicas: desired vs available", (
            q(f"sum by (namespace, deployment) (meshd_deployment_replicas{DEPLOY_DESIRED})",
              "{{deployment}} desired"),
            q(f"sum by (namespace, deployment) (meshd_deployment_replicas{DEPLOY_AVAILABLE})",
              "{{deployment}} available"),
        ), width=12),
        Panel("Replicas by state", (
            q(f"sum by (deployment, state) (meshd_deployment_replicas{DEPLOY_OTHER})",
              "{{deployment}} {{state}}"),), width=12),
        Panel("Rollout complete", (
            q(f"sum by (deployment) (meshd_deployment_rollout_complete{DEPLOY})", "{{deployment}}"),),
              width=12, height=6, max=1, description="1 once a Deployment's latest rollout is complete."),
        Panel("Rollout failed", (
            q(f"sum by (deployment) (meshd_deployment_rollout_failed{DEPLOY})", "{{deployment}}"),),
              width=12, height=6, max=1, description="1 when a rollout exceeded progressDeadlineSeconds."),
        Panel("Pods by phase", (q("sum by (phase) (meshd_pods)", "{{phase}}"),), width=12, stack=True),
        Panel("Container restarts by reason", (
            q(f"sum by (reason) (increase(meshd_container_restarts_total[{RATE}]))", "{{reason}}"),), width=12,
              description="crash, liveness, startup, oom, sandbox (the pod's infra container died)."),
    ]  # fmt: skip
    controller = [
        Panel("Reconcile rate", (q(f"sum(rate(meshd_reconciles_total[{RATE}]))", "passes/s"),), unit="ops", width=8),
        Panel("Reconcile latency", (
            hq(0.5, "meshd_reconcile_duration_seconds_bucket", "", ""),
            hq(0.99, "meshd_reconcile_duration_seconds_bucket", "", ""),
        ), unit="s", width=8),
        Panel("Task restarts and loop lag", (
            q(f"sum by (task) (increase(meshd_task_restarts_total[{RATE}]))", "restarts {{task}}"),
            q("max(meshd_loop_lag_seconds)", "loop lag (s)"),
        ), width=8, description="Supervised tasks that died and were started again; how late the event loop runs."),
        Panel("Cluster: leader and shared store", (
            q("sum(meshd_leader)", "leaders"),
            q("min(meshd_store_up)", "store up (min over agents)"),
            q(f"sum(increase(meshd_store_disconnects_total[{RATE}]))", "store disconnects"),
        ), width=8, description="With --store etcd://: agents leading (1 expected), whether every agent reaches "
                                "the store, and how often one lost it."),
        Panel("Cluster: node joins", (
            q(f"sum by (outcome) (increase(meshd_join_requests_total[{RATE}]))", "{{outcome}}"),
        ), width=8, description="Nodes admitted with a bootstrap token (meshd agent --join), and refusals by "
                                "cause: UnknownToken, WrongSecret, Expired, NameTaken, TooMany..."),
    ]  # fmt: skip
    probes = [
        Panel("Probe results", (
            q(f"sum by (probe, result) (rate(meshd_probe_total[{RATE}]))", "{{probe}} {{result}}"),),
              unit="ops", width=8),
        Panel("Probe latency p99", (hq(0.99, "meshd_probe_duration_seconds_bucket", "", "probe"),), unit="s", width=8),
        Panel("Readiness transitions", (
            q(f"sum by (to) (increase(meshd_readiness_transitions_total[{RATE}]))", "to {{to}}"),), width=8),
    ]  # fmt: skip
    discovery = [
        Panel("DNS queries by rcode", (
            q(f"sum by (rcode) (rate(meshd_dns_queries_total[{RATE}]))", "{{rcode}}"),), unit="reqps", width=8),
        Panel("DNS queries by type", (
            q(f"sum by (qtype) (rate(meshd_dns_queries_total[{RATE}]))", "{{qtype}}"),), unit="reqps", width=8),
        Panel("DNS answer latency", (
            hq(0.5, "meshd_dns_answer_duration_seconds_bucket", "", ""),
            hq(0.99, "meshd_dns_answer_duration_seconds_bucket", "", ""),
        ), unit="s", width=8),
        Panel("DNS dropped and truncated", (
            q(f"sum by (transport) (rate(meshd_dns_dropped_total[{RATE}]))", "dropped {{transport}}"),
            q(f"sum(rate(meshd_dns_truncated_total[{RATE}]))", "truncated"),
        ), unit="reqps", width=8),
        Panel("mDNS announcements", (
            q(f"sum by (action) (increase(meshd_mdns_announcements_total[{RATE}]))", "{{action}}"),
            q(f"sum(increase(meshd_mdns_errors_total[{RATE}]))", "errors"),
        ), width=8),
        Panel("Published and watched", (
            q("sum(meshd_mdns_services)", "mDNS adverts"),
            q("sum(meshd_watch_subscribers)", "endpoint watchers"),
            q("sum(meshd_dns_cache_entries)", "DNS cache entries"),
        ), width=8),
    ]  # fmt: skip
    engine = [
        Panel(
            "Docker engine calls",
            (q(f"sum by (call) (rate(meshd_docker_call_duration_seconds_count[{RATE}]))", "{{call}}"),),
            unit="ops",
            width=8,
            stack=True,
            description="Calls the agent made to the container engine, by kind.",
        ),
        Panel(
            "Docker engine call latency p99",
            (hq(0.99, "meshd_docker_call_duration_seconds_bucket", "", "call"),),
            unit="s",
            width=8,
        ),
        Panel(
            "Docker engine call errors",
            (q(f"sum by (call) (rate(meshd_docker_call_errors_total[{RATE}]))", "{{call}}"),),
            unit="ops",
            width=8,
        ),
    ]
    process = [
        Panel("CPU", (q(f"rate(process_cpu_seconds_total[{RATE}])", "{{meshd_component}} {{instance}}"),),
              unit="percentunit", width=12, description="CPU time per second of each scraped process."),
        Panel("Resident memory", (q("process_resident_memory_bytes", "{{meshd_component}} {{instance}}"),),
              unit="bytes", width=12),
    ]  # fmt: skip
    return dashboard(
        uid="meshd-control-plane",
        title="meshd — control plane",
        description="The agent: Deployments and rollouts, pods and restarts, the controller, probes, DNS and mDNS, "
        "Docker engine calls.",
        tags=["control-plane"],
        variables=DEPLOYMENT_VARIABLES,
        sections=[("Workloads", workloads), ("Controller", controller), ("Probes", probes),
                  ("Discovery: DNS, mDNS, watches", discovery), ("Container engine", engine),
                  ("Processes", process)],
    )  # fmt: skip


DASHBOARDS = {
    "meshd-overview.json": overview,
    "meshd-golden-signals.json": golden_signals,
    "meshd-control-plane.json": control_plane,
}


def render(builder: Any) -> str:
    return json.dumps(builder(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    out = Path(__file__).resolve().parent / "dashboards"
    out.mkdir(exist_ok=True)
    for name, builder in DASHBOARDS.items():
        (out / name).write_text(render(builder), encoding="utf-8")
        print(out / name)


if __name__ == "__main__":
    main()


# --- reading dashboards back (the tests use these) -------------------------------------------------------------

BUILTIN_VARIABLES = {"__rate_interval": "15s", "__interval": "5s", "__range": "5m"}


def load_dashboards(directory: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every dashboard JSON in grafana/dashboards, by file name."""
    directory = directory or Path(__file__).resolve().parent / "dashboards"
    return {
        path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(directory.glob("*.json"))
    }


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that shows data (rows and panels nested in collapsed rows included, rows themselves not)."""
    out = []
    for panel in dash.get("panels", []):
        if panel.get("type") == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def queries(dash: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel."""
    return [(panel["title"], target["expr"]) for panel in panels(dash) for target in panel.get("targets", [])]


def variable_queries(dash: dict[str, Any]) -> list[tuple[str, str]]:
    """(variable name, query) for every `query` variable."""
    out = []
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            out.append((var["name"], query))
    return out


def substitute(expr: str, values: dict[str, str]) -> str:
    """The PromQL Grafana would send: `$name`, `${name}` and `[[name]]` replaced (longest names first)."""
    merged = {**BUILTIN_VARIABLES, **values}
    for name in sorted(merged, key=len, reverse=True):
        for form in (f"${{{name}}}", f"[[{name}]]", f"${name}"):
            expr = expr.replace(form, merged[name])
    return expr
