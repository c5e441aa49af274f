"""A container's environment as the kubelet makes it (pure): env `valueFrom` (the downward API: fieldRef,
resourceFieldRef) and `$(VAR)` references in command, args and env values.

As the kubelet does: `$(VAR)` becomes the value of VAR when VAR is defined (env values see only the variables
defined before them; command and args see all of them), an undefined `$(VAR)` stays as written, `$$` is an
escaped `$` (so `$$(VAR)` gives the literal `$(VAR)`), and any other `$` is kept."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from meshd.model.objects import Container, EnvVar, ResourceFieldRef


def expand(text: str, variables: Mapping[str, str]) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 == n:
            out.append(ch)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":  # escaped
            out.append("$")
            i += 2
        elif following == "(":
            close = text.find(")", i + 2)
            if close == -1:  # unclosed: kept as written
                out.append("$(")
                i += 2
                continue
            name = text[i + 2:close]
            out.append(variables.get(name, f"$({name})"))
            i = close + 1
        else:
            out.append("$" + following)
            i += 2
    return "".join(out)


def expand_container(
    container: Container, base: Mapping[str, str] | None = None
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[EnvVar, ...]]:
    """The container's command, args and env with their references expanded; `base` is what the runtime
    defines before the container's own env (the process driver's POD_IP and PORT variables)."""
    variables = dict(base or {})
    env = []
    for var in container.env:
        value = expand(var.value, variables)
        variables[var.name] = value
        env.append(EnvVar(var.name, value))
    command = tuple(expand(part, variables) for part in container.command)
    args = tuple(expand(part, variables) for part in container.args)
    return command, args, tuple(env)


@dataclass(frozen=True)
class PodFacts:
    """What the downward API (env valueFrom) can read of a pod once its sandbox has an address."""

    name: str
    namespace: str
    uid: str
    node_name: str
    pod_ip: str
    host_ip: str = "127.0.0.1"
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    service_account: str = "default"
    node_cpu_millicores: int = 0  # what an unset cpu / memory limit reads as (the node's allocatable)
    node_memory_bytes: int = 0


_KEYED = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]")


def field_value(path: str, facts: PodFacts) -> str:
    """valueFrom.fieldRef.fieldPath -> the value (a missing label or annotation reads as "")."""
    if m := _KEYED.fullmatch(path):
        found = facts.labels if m.group(1) == "labels" else facts.annotations
        return found.get(m.group(2), "")
    simple = {
        "metadata.name": facts.name, "metadata.namespace": facts.namespace, "metadata.uid": facts.uid,
        "spec.nodeName": facts.node_name, "spec.serviceAccountName": facts.service_account,
        "status.podIP": facts.pod_ip, "status.podIPs": facts.pod_ip,
        "status.hostIP": facts.host_ip, "status.hostIPs": facts.host_ip,
    }
    if path not in simple:
        raise ValueError(f"unsupported fieldPath {path!r}")
    return simple[path]


def resource_value(ref: ResourceFieldRef, container: Container, facts: PodFacts) -> str:
    """valueFrom.resourceFieldRef -> the amount in units of the divisor, rounded up (as the kubelet does); an
    unset limit reads as the node's allocatable, an unset request as 0."""
    kind, _, resource = ref.resource.partition(".")
    amounts = container.resources.limits if kind == "limits" else container.resources.requests
    amount = amounts.cpu_millicores if resource == "cpu" else amounts.memory_bytes
    if amount is None:
        node = facts.node_cpu_millicores if resource == "cpu" else facts.node_memory_bytes
        amount = node if kind == "limits" else 0
    return str(-(-amount // ref.divisor))


def resolve_env(container: Container, pod_containers: Sequence[Container], facts: PodFacts) -> Container:
    """The container with every valueFrom variable given its value (plain `value`s are kept)."""
    if not any(v.field_path or v.resource_field for v in container.env):
        return container
    by_name = {c.name: c for c in pod_containers}
    env = []
    for var in container.env:
        if var.field_path:
            var = EnvVar(var.name, field_value(var.field_path, facts))
        elif var.resource_field is not None:
            target = by_name.get(var.resource_field.container_name, container)
            var = EnvVar(var.name, resource_value(var.resource_field, target, facts))
        env.append(var)
    return replace(container, env=tuple(env))
