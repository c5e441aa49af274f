"""to_manifest: a model object as the Kubernetes-shaped document `-o yaml` prints (the user's document,
with every default meshd applied filled in)."""

from __future__ import annotations

import copy
from typing import Any

from meshd.manifests.config import render_config
from meshd.manifests.podconfig import render_config_volume, render_env_from, render_key_ref
from meshd.manifests.quantity import format_cpu, format_memory
from meshd.manifests.security import render_container_security, render_pod_security
from meshd.manifests.storage import render_volume_source
from meshd.model.objects import (
    ConfigMap,
    Container,
    Deployment,
    EnvVar,
    ExecAction,
    GRPCAction,
    HTTPGetAction,
    KubeObject,
    ObjectMeta,
    Pod,
    PodSpec,
    PodTemplate,
    Probe,
    ReplicaSet,
    ResourceList,
    Secret,
    Service,
)


def to_manifest(obj: KubeObject) -> dict[str, Any]:
    """The object's raw document (a copy) with apiVersion, kind, namespace and defaults filled in;
    objects made in code (no raw) are rendered from their fields alone."""
    rendered = render(obj)
    if not obj.raw:
        return rendered
    doc = copy.deepcopy(dict(obj.raw))
    doc["apiVersion"] = obj.api_version
    doc["kind"] = obj.kind
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict):
        metadata = doc["metadata"] = {}
    metadata["namespace"] = obj.metadata.namespace
    _fill(doc, rendered)
    return doc


def _fill(doc: Any, defaults: Any) -> Any:
    """Adds what `defaults` has and `doc` lacks; the user's own values (e.g. "500m") are kept."""
    if isinstance(doc, dict) and isinstance(defaults, dict):
        for key, value in defaults.items():
            doc[key] = _fill(doc[key], value) if key in doc else copy.deepcopy(value)
    elif isinstance(doc, list) and isinstance(defaults, list) and len(doc) == len(defaults):
        for i, value in enumerate(defaults):
            doc[i] = _fill(doc[i], value)
    return doc


def render(obj: KubeObject) -> dict[str, Any]:
    """The object from its fields alone, in Kubernetes' shape."""
    doc: dict[str, Any] = {
        "apiVersion": obj.api_version,
        "kind": obj.kind,
        "metadata": render_meta(obj.metadata),
    }
    if isinstance(obj, Pod):
        doc["spec"] = render_pod_spec(obj.spec)
    elif isinstance(obj, ReplicaSet):
        doc["spec"] = {
            "replicas": obj.replicas,
            "selector": {"matchLabels": dict(obj.selector.match_labels)},
            "template": render_template(obj.template),
        }
        if obj.min_ready_seconds:
            doc["spec"]["minReadySeconds"] = _num(obj.min_ready_seconds)
    elif isinstance(obj, Deployment):
        strategy: dict[str, Any] = {"type": obj.strategy}
        if obj.strategy == "RollingUpdate":
            strategy["rollingUpdate"] = {
                "maxSurge": obj.rolling_update.max_surge,
                "maxUnavailable": obj.rolling_update.max_unavailable,
            }
        doc["spec"] = {
            "replicas": obj.replicas,
            "selector": {"matchLabels": dict(obj.selector.match_labels)},
            "template": render_template(obj.template),
            "strategy": strategy,
            "progressDeadlineSeconds": _num(obj.progress_deadline_seconds),
            "revisionHistoryLimit": obj.revision_history_limit,
        }
        if obj.min_ready_seconds:
            doc["spec"]["minReadySeconds"] = _num(obj.min_ready_seconds)
        if obj.paused:
            doc["spec"]["paused"] = True
    elif isinstance(obj, Service):
        spec: dict[str, Any] = {"type": "ClusterIP"}
        if obj.type == "ExternalName":
            spec.update(type="ExternalName", externalName=obj.external_name)
        if obj.selector:
            spec["selector"] = dict(obj.selector)
        if obj.headless:
            spec["clusterIP"] = "None"
        elif obj.cluster_ip:
            spec["clusterIP"] = obj.cluster_ip
        ports = []
        for port in obj.ports:
            item: dict[str, Any] = {"name": port.name} if port.name else {}
            item.update(port=port.port, targetPort=port.target_port, protocol=port.protocol)
            if port.app_protocol:
                item["appProtocol"] = port.app_protocol
            ports.append(item)
        if ports:
            spec["ports"] = ports
        if obj.traffic_distribution:
            spec["trafficDistribution"] = obj.traffic_distribution
        doc["spec"] = spec
    elif isinstance(obj, (ConfigMap, Secret)):
        doc.update(render_config(obj))
    return doc


def render_meta(meta: ObjectMeta) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if meta.name:
        out["name"] = meta.name
        out["namespace"] = meta.namespace
    if meta.labels:
        out["labels"] = dict(meta.labels)
    if meta.annotations:
        out["annotations"] = dict(meta.annotations)
    return out


def render_template(template: PodTemplate) -> dict[str, Any]:
    return {"metadata": render_meta(template.metadata), "spec": render_pod_spec(template.spec)}


def render_pod_spec(spec: PodSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "containers": [render_container(c) for c in spec.containers],
        "restartPolicy": spec.restart_policy,
        "terminationGracePeriodSeconds": _num(spec.termination_grace_period_seconds),
    }
    if spec.share_process_namespace:
        out["shareProcessNamespace"] = True
    if spec.volumes:
        out["volumes"] = [
            {"name": v.name, **(render_config_volume(v) or render_volume_source(v))}
            for v in spec.volumes
        ]
    if spec.hostname:
        out["hostname"] = spec.hostname
    if spec.subdomain:
        out["subdomain"] = spec.subdomain
    if spec.image_pull_secrets:
        out["imagePullSecrets"] = [{"name": n} for n in spec.image_pull_secrets]
    if spec.init_containers:
        out["initContainers"] = [render_container(c) for c in spec.init_containers]
    out["securityContext"] = render_pod_security(spec.security_context) if spec.security_context else {}
    for key, on in (("hostNetwork", spec.host_network), ("hostPID", spec.host_pid), ("hostIPC", spec.host_ipc)):
        if on:
            out[key] = True
    return out


def render_container(container: Container) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": container.name,
        "image": container.image,
        "imagePullPolicy": container.image_pull_policy,
    }
    if container.command:
        out["command"] = list(container.command)
    if container.args:
        out["args"] = list(container.args)
    if container.working_dir:
        out["workingDir"] = container.working_dir
    for key, on in (("stdin", container.stdin), ("stdinOnce", container.stdin_once), ("tty", container.tty)):
        if on:
            out[key] = True
    if container.env:
        out["env"] = [_render_env(e) for e in container.env]
    if container.env_from:
        out["envFrom"] = render_env_from(container.env_from)
    if container.ports:
        out["ports"] = [
            {
                **({"name": p.name} if p.name else {}),
                "containerPort": p.container_port,
                "protocol": p.protocol,
            }
            for p in container.ports
        ]
    resources = {}
    for key, amounts in (("limits", container.resources.limits), ("requests", container.resources.requests)):
        rendered = _render_resource_list(amounts)
        if rendered:
            resources[key] = rendered
    out["resources"] = resources
    if container.volume_mounts:
        out["volumeMounts"] = [
            {"name": m.name, "mountPath": m.mount_path, **({"readOnly": True} if m.read_only else {}),
             **({"subPath": m.sub_path} if m.sub_path else {})}
            for m in container.volume_mounts
        ]
    for key, probe in (
        ("livenessProbe", container.liveness_probe),
        ("readinessProbe", container.readiness_probe),
        ("startupProbe", container.startup_probe),
    ):
        if probe is not None:
            out[key] = render_probe(probe)
    if container.pre_stop is not None:
        pre_stop: dict[str, Any] = {}
        if container.pre_stop.exec_command is not None:
            pre_stop["exec"] = {"command": list(container.pre_stop.exec_command)}
        if container.pre_stop.sleep_seconds is not None:
            pre_stop["sleep"] = {"seconds": _num(container.pre_stop.sleep_seconds)}
        out["lifecycle"] = {"preStop": pre_stop}
    if container.security_context is not None:
        out["securityContext"] = render_container_security(container.security_context)
    if container.restart_policy:
        out["restartPolicy"] = container.restart_policy
    return out


def _render_env(var: EnvVar) -> dict[str, Any]:
    if var.key_ref is not None:
        return {"name": var.name, "valueFrom": render_key_ref(var.key_ref)}
    if var.field_path:
        field_ref = {"apiVersion": "v1", "fieldPath": var.field_path}
        return {"name": var.name, "valueFrom": {"fieldRef": field_ref}}
    ref = var.resource_field
    if ref is not None:
        divisor = format_cpu(ref.divisor) if ref.resource.endswith("cpu") else format_memory(ref.divisor)
        return {"name": var.name, "valueFrom": {"resourceFieldRef": {
            **({"containerName": ref.container_name} if ref.container_name else {}),
            "resource": ref.resource, "divisor": divisor}}}
    return {"name": var.name, "value": var.value}


def _render_resource_list(amounts: ResourceList) -> dict[str, str]:
    out = {}
    if amounts.cpu_millicores is not None:
        out["cpu"] = format_cpu(amounts.cpu_millicores)
    if amounts.memory_bytes is not None:
        out["memory"] = format_memory(amounts.memory_bytes)
    return out


def render_probe(probe: Probe) -> dict[str, Any]:
    handler = probe.handler
    out: dict[str, Any]
    if isinstance(handler, HTTPGetAction):
        http: dict[str, Any] = {"path": handler.path, "port": handler.port, "scheme": handler.scheme}
        if handler.host:
            http["host"] = handler.host
        if handler.http_headers:
            http["httpHeaders"] = [{"name": n, "value": v} for n, v in handler.http_headers]
        out = {"httpGet": http}
    elif isinstance(handler, ExecAction):
        out = {"exec": {"command": list(handler.command)}}
    elif isinstance(handler, GRPCAction):
        out = {"grpc": {"port": handler.port, "service": handler.service}}
    else:
        out = {"tcpSocket": {"port": handler.port}}
    if probe.initial_delay_seconds:
        out["initialDelaySeconds"] = _num(probe.initial_delay_seconds)
    out.update(
        periodSeconds=_num(probe.period_seconds),
        timeoutSeconds=_num(probe.timeout_seconds),
        successThreshold=probe.success_threshold,
        failureThreshold=probe.failure_threshold,
    )
    return out


def qos_class(spec: dict[str, Any]) -> str:
    """Kubernetes' QoS class of a rendered pod spec: Guaranteed (every container has cpu and memory
    limits, and requests equal to them), BestEffort (no container sets any), else Burstable."""
    containers = spec.get("containers") or []
    any_set = False
    guaranteed = bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        any_set = any_set or bool(limits) or bool(requests)
        for name in ("cpu", "memory"):
            if name not in limits or requests.get(name, limits[name]) != limits[name]:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _num(value: float) -> float | int:
    return int(value) if isinstance(value, float) and value.is_integer() else value
