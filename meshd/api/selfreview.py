"""What scripts ask a cluster before they act, answered as the API server answers: `kubectl auth can-i`
(authorization.k8s.io/v1 SelfSubjectAccessReview, and SelfSubjectRulesReview for `--list`), `kubectl auth whoami`
(authentication.k8s.io/v1 SelfSubjectReview) and `kubectl top node` (metrics.k8s.io/v1beta1 NodeMetrics).

meshd has one credential, the agent's token (or its Unix socket's owner), and it may do everything: every access
review is allowed, and says why. A review whose body is not JSON, or names no verb or resource, is a 400, as the
API server refuses it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from meshd.api import status as api_status
from meshd.api.kinds import Kind

USER = "meshd-admin"
GROUPS = ["system:masters", "system:authenticated"]
ALLOWED = "meshd: the API's token (or its socket's owner) may do everything"
USAGE_WINDOW = 0.25  # seconds between the two CPU samples of `top node`

ACCESS_REVIEW = Kind("SelfSubjectAccessReview", "selfsubjectaccessreviews", "authorization.k8s.io", "v1", (),
                     verbs=("create",), categories=(), namespaced=False)
RULES_REVIEW = Kind("SelfSubjectRulesReview", "selfsubjectrulesreviews", "authorization.k8s.io", "v1", (),
                    verbs=("create",), categories=(), namespaced=False)
SELF_REVIEW = Kind("SelfSubjectReview", "selfsubjectreviews", "authentication.k8s.io", "v1", (),
                   verbs=("create",), categories=(), namespaced=False)
NODEMETRICS = Kind("NodeMetrics", "nodes", "metrics.k8s.io", "v1beta1", (), verbs=("get", "list"), categories=(),
                   namespaced=False)
KINDS = (ACCESS_REVIEW, RULES_REVIEW, SELF_REVIEW, NODEMETRICS)


def access_review(body: Any) -> dict[str, Any]:
    """The review with its status; ValueError when it asks about nothing."""
    spec = body.get("spec") if isinstance(body, dict) else None
    if not isinstance(spec, dict):
        raise ValueError("SelfSubjectAccessReview: spec: Required value")
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if not isinstance(resource, dict) and not isinstance(non_resource, dict):
        raise ValueError("spec.resourceAttributes: Invalid value: null: exactly one of nonResourceAttributes or "
                         "resourceAttributes must be specified")
    asked = resource if isinstance(resource, dict) else non_resource
    if not isinstance(asked, dict) or not asked.get("verb"):
        raise ValueError("spec.resourceAttributes.verb: Required value")
    return {**body, "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "status": {"allowed": True, "reason": ALLOWED}}


def rules_review(body: Any) -> dict[str, Any]:
    return {**(body if isinstance(body, dict) else {}), "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectRulesReview", "status": {
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": False}}


def self_review() -> dict[str, Any]:
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview", "metadata": {},
            "status": {"userInfo": {"username": USER, "groups": GROUPS}}}


def cpu_ticks(stat: str) -> tuple[int, int]:
    """(busy, total) jiffies of the host from /proc/stat's first line."""
    parts = [int(v) for v in stat.splitlines()[0].split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)  # idle + iowait
    total = sum(parts[:8])  # guest time is already in user and nice
    return total - idle, total


def memory_used(meminfo: str) -> int:
    """Bytes in use, as the kubelet's node summary counts the working set: MemTotal - MemAvailable."""
    values = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in meminfo.splitlines() if ":" in line}
    return values.get("MemTotal", 0) - values.get("MemAvailable", 0)


def node_metrics(name: str, *, busy_cores: float, memory_bytes: int, timestamp: str) -> dict[str, Any]:
    return {"apiVersion": "metrics.k8s.io/v1beta1", "kind": "NodeMetrics",
            "metadata": {"name": name}, "timestamp": timestamp, "window": f"{USAGE_WINDOW}s",
            "usage": {"cpu": f"{int(busy_cores * 1e9)}n", "memory": f"{memory_bytes // 1024}Ki"}}


def _read(path: str) -> str:
    return Path(path).read_text()


async def _host_usage() -> tuple[float, int]:
    busy0, total0 = cpu_ticks(await asyncio.to_thread(_read, "/proc/stat"))
    await asyncio.sleep(USAGE_WINDOW)
    busy1, total1 = cpu_ticks(await asyncio.to_thread(_read, "/proc/stat"))
    cpus = max(1, len([line for line in (await asyncio.to_thread(_read, "/proc/stat")).splitlines()
                       if line.startswith("cpu") and line[3:4].isdigit()]))
    share = (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0
    return share * cpus, memory_used(await asyncio.to_thread(_read, "/proc/meminfo"))


async def _json_body(request: web.Request) -> Any:
    """The review as JSON; kubectl's typed client sends protobuf, of which nothing is needed (every review is
    allowed): an empty review, answered with its status."""
    if request.content_type == "application/vnd.kubernetes.protobuf":
        await request.read()
        return {"spec": {"resourceAttributes": {"verb": "*"}}}
    try:
        return json.loads(await request.read() or b"{}")
    except ValueError as error:
        raise ValueError(f"the request body is not JSON: {error}") from None


def add_routes(router: web.UrlDispatcher, node_names: Any) -> None:
    """`node_names()`: the names of the nodes this agent answers `top node` for (its own)."""

    async def can_i(request: web.Request) -> web.Response:
        try:
            return web.json_response(access_review(await _json_body(request)), status=201)
        except ValueError as error:
            return api_status.response(400, str(error))

    async def rules(request: web.Request) -> web.Response:
        try:
            return web.json_response(rules_review(await _json_body(request)), status=201)
        except ValueError as error:
            return api_status.response(400, str(error))

    async def whoami(request: web.Request) -> web.Response:
        return web.json_response(self_review(), status=201)

    async def top_nodes(request: web.Request) -> web.Response:
        wanted = request.match_info.get("name")
        names = [n for n in node_names() if wanted in (None, n)]
        if wanted is not None and not names:
            return api_status.response(404, f'nodemetrics.metrics.k8s.io "{wanted}" not found')
        cores, memory = await _host_usage()
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        items = [node_metrics(n, busy_cores=cores, memory_bytes=memory, timestamp=now) for n in names]
        if wanted is not None:
            return web.json_response(items[0])
        return web.json_response({"apiVersion": "metrics.k8s.io/v1beta1", "kind": "NodeMetricsList",
                                  "metadata": {}, "items": [{k: v for k, v in i.items()
                                                             if k not in ("apiVersion", "kind")} for i in items]})

    router.add_post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", can_i)
    router.add_post("/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", rules)
    router.add_post("/apis/authentication.k8s.io/v1/selfsubjectreviews", whoami)
    router.add_get("/apis/metrics.k8s.io/v1beta1/nodes", top_nodes)
    router.add_get("/apis/metrics.k8s.io/v1beta1/nodes/{name}", top_nodes)


__all__ = ["KINDS", "access_review", "add_routes", "cpu_ticks", "memory_used", "node_metrics", "rules_review"]
