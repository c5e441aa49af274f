"""`meshd top pods`: PodMetrics (metrics.k8s.io/v1beta1 shape) -> kubectl top's table (pure)."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from typing import Any

from meshd.cli.tabwriter import TableWriter

Obj = dict[str, Any]
MIB = 1024 * 1024


def _quantity(value: Any) -> Decimal:
    from meshd.manifests.quantity import QuantityError, parse_quantity

    try:
        return parse_quantity(value if value is not None else 0)
    except QuantityError:
        return Decimal(0)


def container_usage(container: Obj) -> tuple[int, int]:
    """(millicores, bytes) of one container's usage ("12m"/"1500000n", "34Mi")."""
    usage = container.get("usage") or {}
    millicores = (_quantity(usage.get("cpu")) * 1000).to_integral_value(rounding=ROUND_CEILING)
    return int(millicores), int(_quantity(usage.get("memory")))


def pod_usage(metrics: Obj) -> tuple[int, int]:
    cpu = mem = 0
    for container in metrics.get("containers") or []:
        c, m = container_usage(container)
        cpu, mem = cpu + c, mem + m
    return cpu, mem


def top_pods(
    items: list[Obj], *, containers: bool = False, all_namespaces: bool = False, sort_by: str | None = None
) -> str:
    """kubectl top pod: NAME CPU(cores) MEMORY(bytes) (+ NAMESPACE, + per-container rows with --containers)."""
    keyed = [(m, pod_usage(m)) for m in items]
    if sort_by == "cpu":
        keyed.sort(key=lambda mu: -mu[1][0])
    elif sort_by == "memory":
        keyed.sort(key=lambda mu: -mu[1][1])
    head = (
        (["NAMESPACE"] if all_namespaces else [])
        + (["POD"] if containers else [])
        + ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    )
    rows = [head]
    for metrics, (cpu, mem) in keyed:
        meta = metrics.get("metadata") or {}
        ns = [meta.get("namespace", "")] if all_namespaces else []
        if containers:
            for container in metrics.get("containers") or []:
                c, m = container_usage(container)
                rows.append(ns + [meta.get("name", ""), container.get("name", ""), f"{c}m", f"{m // MIB}Mi"])
        else:
            rows.append(ns + [meta.get("name", ""), f"{cpu}m", f"{mem // MIB}Mi"])
    return TableWriter().render(rows)
