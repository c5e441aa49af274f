"""`meshd describe`: kubectl-like sections for pods, deployments, replicasets, services, endpoints (pure)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from meshd.api.wholeseconds import restore as exact_seconds
from meshd.cli.tables import NONE, format_endpoints, format_selector, pod_status
from meshd.cli.tabwriter import tabwrite
from meshd.cli.timefmt import age, describe_time
from meshd.manifests.render import qos_class

Obj = dict[str, Any]
_PROBE_DEFAULTS = {
    "initialDelaySeconds": 0,
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "successThreshold": 1,
    "failureThreshold": 3,
}


class Section:
    """Lines of "key:\\tvalue" at indent levels; rendered through kubectl's describe tabwriter."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, level: int, text: str) -> None:
        self.lines.append("  " * level + text)

    def kv(self, level: int, key: str, value: Any) -> None:
        self.add(level, f"{key}:\t{value}")

    def multiline(self, level: int, key: str, values: list[str]) -> None:
        """A title with values on continuation lines aligned under the first (Labels, Annotations)."""
        if not values:
            self.kv(level, key, NONE)
            return
        self.kv(level, key, values[0])
        for value in values[1:]:
            self.add(level, f"\t{value}")

    def render(self) -> str:
        return tabwrite("\n".join(self.lines), minwidth=0, padding=2).rstrip("\n")


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _number(value: Any) -> str:
    """0.2 -> "0.2", 10.0 -> "10"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _labels(labels: Any) -> list[str]:
    return [f"{k}={v}" for k, v in sorted((labels or {}).items())]


def _annotations(annotations: Any, hide: tuple[str, ...] = ()) -> list[str]:
    return [f"{k}: {v}" for k, v in sorted((annotations or {}).items()) if k not in hide]


def _header(s: Section, obj: Obj, *, created: bool = False, hide: tuple[str, ...] = ()) -> None:
    meta = _meta(obj)
    s.kv(0, "Name", meta.get("name", ""))
    s.kv(0, "Namespace", meta.get("namespace", "default"))
    if created:
        s.kv(0, "CreationTimestamp", describe_time(meta.get("creationTimestamp")))
    s.multiline(0, "Labels", _labels(meta.get("labels")))
    s.multiline(0, "Annotations", _annotations(meta.get("annotations"), hide))


def _controller(obj: Obj) -> str | None:
    for ref in _meta(obj).get("ownerReferences") or []:
        if ref.get("controller", True):
            return f"{ref.get('kind')}/{ref.get('name')}"
    return None


# --- containers -------------------------------------------------------------------------------------------


def describe_probe(probe: Obj) -> str:
    """kubectl's probe line: "http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3"."""
    v = {**_PROBE_DEFAULTS, **{k: probe[k] for k in _PROBE_DEFAULTS if probe.get(k) is not None}}
    attrs = (
        f"delay={_number(v['initialDelaySeconds'])}s timeout={_number(v['timeoutSeconds'])}s "
        f"period={_number(v['periodSeconds'])}s #success={v['successThreshold']} #failure={v['failureThreshold']}"
    )
    if "exec" in probe:
        return f"exec [{' '.join(str(a) for a in (probe['exec'] or {}).get('command') or [])}] {attrs}"
    if "httpGet" in probe:
        get = probe["httpGet"] or {}
        scheme = str(get.get("scheme") or "HTTP").lower()
        return f"http-get {scheme}://{get.get('host') or ''}:{get.get('port', '')}{get.get('path') or ''} {attrs}"
    if "tcpSocket" in probe:
        tcp = probe["tcpSocket"] or {}
        return f"tcp-socket {tcp.get('host') or ''}:{tcp.get('port', '')} {attrs}"
    if "grpc" in probe:
        grpc = probe["grpc"] or {}
        return f"grpc <pod>:{grpc.get('port', '')} {grpc.get('service') or ''} {attrs}".replace("  ", " ")
    return f"unknown {attrs}"


def _state(s: Section, level: int, title: str, state: Obj) -> None:
    if "running" in state:
        s.kv(level, title, "Running")
        s.kv(level + 1, "Started", describe_time((state["running"] or {}).get("startedAt")))
    elif "terminated" in state:
        t = state["terminated"] or {}
        s.kv(level, title, "Terminated")
        if t.get("reason"):
            s.kv(level + 1, "Reason", t["reason"])
        if t.get("message"):
            s.kv(level + 1, "Message", " ".join(str(t["message"]).split()))
        s.kv(level + 1, "Exit Code", t.get("exitCode", 0))
        if t.get("signal"):
            s.kv(level + 1, "Signal", t["signal"])
        s.kv(level + 1, "Started", describe_time(t.get("startedAt")))
        s.kv(level + 1, "Finished", describe_time(t.get("finishedAt")))
    else:
        w = state.get("waiting") or {}
        s.kv(level, title, "Waiting")
        if w.get("reason"):
            s.kv(level + 1, "Reason", w["reason"])
        if w.get("message"):
            s.kv(level + 1, "Message", " ".join(str(w["message"]).split()))


def _ports(container: Obj) -> str:
    ports = [f"{p.get('containerPort')}/{p.get('protocol') or 'TCP'}" for p in container.get("ports") or []]
    return ", ".join(ports) or NONE


def _resources(s: Section, level: int, container: Obj) -> None:
    resources = container.get("resources") or {}
    for title, key in (("Limits", "limits"), ("Requests", "requests")):
        values = resources.get(key) or {}
        if values:
            s.add(level, f"{title}:")
            for name, value in sorted(values.items()):
                s.kv(level + 1, name, value)


def _container(s: Section, container: Obj, status: Obj | None, *, template: bool = False) -> None:
    name_level, level = (1, 2)
    s.add(name_level, f"{' ' if template else ''}{container.get('name', '')}:")
    if not template:
        s.kv(level, "Container ID", (status or {}).get("containerID") or "")
    s.kv(level, "Image", container.get("image", ""))
    if not template:
        s.kv(level, "Image ID", (status or {}).get("imageID") or "")
    ports = _ports(container)
    s.kv(level, "Ports" if "," in ports else "Port", ports)
    for title, key in (("Command", "command"), ("Args", "args")):
        if container.get(key):
            s.add(level, f"{title}:")
            for arg in container[key]:
                s.add(level + 1, str(arg))
    if status is not None:
        _state(s, level, "State", status.get("state") or {})
        if status.get("lastState"):
            _state(s, level, "Last State", status["lastState"])
        s.kv(level, "Ready", "True" if status.get("ready") else "False")
        s.kv(level, "Restart Count", status.get("restartCount", 0))
    elif not template:
        s.kv(level, "State", "Waiting")
        s.kv(level, "Ready", "False")
        s.kv(level, "Restart Count", 0)
    _resources(s, level, container)
    # the agent reports each probe in containerStatuses[].probes: [{type, probe, state, last}]
    reports = [r for r in (status or {}).get("probes") or [] if isinstance(r, dict)]
    by_type = {str(r.get("type", "")).lower(): r for r in reports}
    for title, key in (
        ("Liveness", "livenessProbe"),
        ("Readiness", "readinessProbe"),
        ("Startup", "startupProbe"),
    ):
        if container.get(key):
            s.kv(level, title, describe_probe(container[key]))
        elif by_type.get(title.lower(), {}).get("probe"):
            s.kv(level, title, by_type[title.lower()]["probe"])
    if reports:
        s.add(level, "Last Probe Results:")
        for r in reports:
            state, last = r.get("state"), r.get("last") or NONE
            s.kv(level + 1, str(r.get("type", "")).capitalize(), f"{state}; last: {last}" if state else last)
    env = container.get("env") or []
    if env:
        s.add(level, "Environment:")
        for var in env:
            value = var.get("value", "")
            source = var.get("valueFrom") or {}
            if "fieldRef" in source:  # as kubectl shows them
                ref = source["fieldRef"] or {}
                value = f"({ref.get('apiVersion', 'v1')}:{ref.get('fieldPath', '')})"
            elif "resourceFieldRef" in source:
                value = f"({(source['resourceFieldRef'] or {}).get('resource', '')})"
            elif "secretKeyRef" in source or "configMapKeyRef" in source:  # the reference, never the value
                value = describe_key_ref(source)
            elif source:
                value = f"<set from {', '.join(source)}>"
            s.kv(level + 1, var.get("name", ""), value)
    else:
        s.kv(level, "Environment", NONE)
    if container.get("envFrom"):
        s.add(level, "Environment Variables from:")
        for source in container["envFrom"]:
            s.add(level + 1, describe_env_from(source))
    mounts = [
        f"{m.get('mountPath')} from {m.get('name')} ({'ro' if m.get('readOnly') else 'rw'}"
        + (f',path="{m["subPath"]}")' if m.get("subPath") else ")")
        for m in container.get("volumeMounts") or []
    ]
    s.multiline(level, "Mounts", mounts)


def _volumes(s: Section, level: int, spec: Obj) -> None:
    volumes = spec.get("volumes") or []
    if not volumes:
        s.kv(level, "Volumes", NONE)
        return
    s.add(level, "Volumes:")
    for volume in volumes:
        s.add(level + 1, f"{volume.get('name')}:")
        if "emptyDir" in volume:
            empty = volume.get("emptyDir") or {}
            s.kv(level + 2, "Type", "EmptyDir (a temporary directory that shares a pod's lifetime)")
            s.kv(level + 2, "Medium", empty.get("medium") or "")
            s.kv(level + 2, "SizeLimit", empty.get("sizeLimit") or "<unset>")
        elif any(k in volume for k in CONFIG_VOLUME_TYPES):
            for key, value in describe_config_volume(volume):
                s.kv(level + 2, key, value)
        else:
            s.kv(level + 2, "Type", ", ".join(k for k in volume if k != "name") or "<unknown>")


# --- events -----------------------------------------------------------------------------------------------


def events_for(events: list[Obj], kind: str, name: str) -> list[Obj]:
    """The events about one object, oldest first."""
    mine = [
        e
        for e in events
        if (e.get("involvedObject") or {}).get("kind") == kind
        and (e.get("involvedObject") or {}).get("name") == name
    ]
    return sorted(
        mine, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp") or ""
    )


def _events(s: Section, events: list[Obj], now: datetime) -> None:
    if not events:
        s.kv(0, "Events", NONE)
        return
    s.add(0, "Events:")
    s.add(1, "Type\tReason\tAge\tFrom\tMessage")
    s.add(1, "----\t------\t----\t----\t-------")
    for e in events:
        last = e.get("lastTimestamp") or e.get("eventTime") or _meta(e).get("creationTimestamp")
        count = int(e.get("count") or 1)
        when = age(last, now)
        if count > 1:
            when = f"{when} (x{count} over {age(e.get('firstTimestamp') or last, now)})"
        source = e.get("source") or {}
        origin = (
            ", ".join(x for x in (source.get("component"), source.get("host")) if x)
            or e.get("reportingComponent")
            or ""
        )
        message = " ".join(str(e.get("message") or "").split())
        s.add(1, f"{e.get('type') or 'Normal'}\t{e.get('reason') or ''}\t{when}\t{origin}\t{message}")


# --- per kind ---------------------------------------------------------------------------------------------


def describe_pod(pod: Obj, events: list[Obj], now: datetime) -> str:
    pod = exact_seconds(pod)  # the API serves whole seconds (meshd.api.wholeseconds)
    s = Section()
    meta, spec, status = _meta(pod), pod.get("spec") or {}, pod.get("status") or {}
    _header_pod(s, pod)
    phase = pod_status(pod) if meta.get("deletionTimestamp") else status.get("phase") or "Unknown"
    s.kv(0, "Status", phase)
    if status.get("reason"):
        s.kv(0, "Reason", status["reason"])
    if status.get("message"):
        s.kv(0, "Message", status["message"])
    s.kv(0, "IP", status.get("podIP") or "")
    ips = [i.get("ip") for i in status.get("podIPs") or [] if i.get("ip")] or (
        [status["podIP"]] if status.get("podIP") else []
    )
    if ips:
        s.add(0, "IPs:")
        for ip in ips:
            s.kv(1, "IP", ip)
    else:
        s.kv(0, "IPs", NONE)
    controller = _controller(pod)
    if controller:
        s.kv(0, "Controlled By", controller)
    statuses = {cs.get("name"): cs for cs in
                (*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or []))}
    if spec.get("initContainers"):  # as kubectl describes them, before the app containers
        s.add(0, "Init Containers:")
        for container in spec["initContainers"]:
            _container(s, container, statuses.get(container.get("name")))
    s.add(0, "Containers:")
    for container in spec.get("containers") or []:
        _container(s, container, statuses.get(container.get("name")))
    conditions = status.get("conditions") or []
    if conditions:
        s.add(0, "Conditions:")
        s.add(1, "Type\tStatus")
        for c in conditions:
            s.add(1, f"{c.get('type')}\t{c.get('status')} ")
    _volumes(s, 0, spec)
    s.kv(0, "QoS Class", status.get("qosClass") or qos_class(spec))
    _events(s, events, now)
    return s.render()


def _header_pod(s: Section, pod: Obj) -> None:
    meta, spec, status = _meta(pod), pod.get("spec") or {}, pod.get("status") or {}
    s.kv(0, "Name", meta.get("name", ""))
    s.kv(0, "Namespace", meta.get("namespace", "default"))
    node = spec.get("nodeName")
    s.kv(0, "Node", f"{node}/{status['hostIP']}" if node and status.get("hostIP") else node or NONE)
    if status.get("startTime"):
        s.kv(0, "Start Time", describe_time(status["startTime"]))
    s.multiline(0, "Labels", _labels(meta.get("labels")))
    s.multiline(0, "Annotations", _annotations(meta.get("annotations")))


def describe_pod_template(template: Obj) -> str:
    """A pod template as `kubectl rollout history --revision` prints it."""
    s = Section()
    _pod_template(s, template)
    return s.render()


def _pod_template(s: Section, template: Obj) -> None:
    s.add(0, "Pod Template:")
    s.multiline(1, "Labels", _labels(_meta(template).get("labels")))
    spec = template.get("spec") or {}
    s.add(1, "Containers:")
    for container in spec.get("containers") or []:
        _container(s, container, None, template=True)
    _volumes(s, 1, spec)


def _conditions_table(s: Section, conditions: list[Obj]) -> None:
    if not conditions:
        return
    s.add(0, "Conditions:")
    s.add(1, "Type\tStatus\tReason")
    s.add(1, "----\t------\t------")
    for c in conditions:
        s.add(1, f"{c.get('type')}\t{c.get('status')}\t{c.get('reason') or ''}")


def _revision(obj: Obj) -> int:
    try:
        return int((_meta(obj).get("annotations") or {}).get("deployment.kubernetes.io/revision", 0))
    except (TypeError, ValueError):
        return 0


def _rs_line(rs: Obj) -> str:
    replicas = (rs.get("spec") or {}).get("replicas")
    desired = 1 if replicas is None else replicas
    return (
        f"{_meta(rs).get('name')} ({(rs.get('status') or {}).get('replicas', 0)}/{desired} replicas created)"
    )


def describe_deployment(dep: Obj, replicasets: list[Obj], events: list[Obj], now: datetime) -> str:
    dep = exact_seconds(dep)  # the API serves whole seconds (meshd.api.wholeseconds)
    s = Section()
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    _header(s, dep, created=True)
    s.kv(0, "Selector", format_selector(spec.get("selector")))
    desired = 1 if spec.get("replicas") is None else spec["replicas"]
    s.kv(
        0,
        "Replicas",
        f"{desired} desired | {status.get('updatedReplicas', 0)} updated | {status.get('replicas', 0)} total | "
        f"{status.get('availableReplicas', 0)} available | {status.get('unavailableReplicas', 0)} unavailable",
    )
    strategy = spec.get("strategy") or {}
    kind = strategy.get("type") or "RollingUpdate"
    s.kv(0, "StrategyType", kind)
    s.kv(0, "MinReadySeconds", spec.get("minReadySeconds", 0))
    if kind == "RollingUpdate":
        ru = strategy.get("rollingUpdate") or {}
        s.kv(
            0,
            "RollingUpdateStrategy",
            f"{ru.get('maxUnavailable', '25%')} max unavailable, {ru.get('maxSurge', '25%')} max surge",
        )
    _pod_template(s, spec.get("template") or {})
    _conditions_table(s, status.get("conditions") or [])
    owned = [
        rs
        for rs in replicasets
        if any(
            r.get("kind") == "Deployment" and r.get("name") == _meta(dep).get("name")
            for r in _meta(rs).get("ownerReferences") or []
        )
    ]
    owned.sort(key=_revision)
    new, old = (owned[-1], owned[:-1]) if owned else (None, [])
    old = [
        rs
        for rs in old
        if ((rs.get("spec") or {}).get("replicas") or 0) > 0 or (rs.get("status") or {}).get("replicas")
    ]
    s.kv(0, "OldReplicaSets", ", ".join(_rs_line(rs) for rs in old) or NONE)
    s.kv(0, "NewReplicaSet", _rs_line(new) if new else NONE)
    _events(s, events, now)
    return s.render()


def describe_replicaset(rs: Obj, pods: list[Obj], events: list[Obj], now: datetime) -> str:
    rs = exact_seconds(rs)  # the API serves whole seconds (meshd.api.wholeseconds)
    s = Section()
    spec, status = rs.get("spec") or {}, rs.get("status") or {}
    meta = _meta(rs)
    s.kv(0, "Name", meta.get("name", ""))
    s.kv(0, "Namespace", meta.get("namespace", "default"))
    s.kv(0, "Selector", format_selector(spec.get("selector")))
    s.multiline(0, "Labels", _labels(meta.get("labels")))
    s.multiline(0, "Annotations", _annotations(meta.get("annotations")))
    controller = _controller(rs)
    if controller:
        s.kv(0, "Controlled By", controller)
    desired = 1 if spec.get("replicas") is None else spec["replicas"]
    s.kv(0, "Replicas", f"{status.get('replicas', 0)} current / {desired} desired")
    phases = [(p.get("status") or {}).get("phase") for p in pods]
    s.kv(
        0,
        "Pods Status",
        f"{phases.count('Running')} Running / {phases.count('Pending')} Waiting / "
        f"{phases.count('Succeeded')} Succeeded / {phases.count('Failed')} Failed",
    )
    _pod_template(s, spec.get("template") or {})
    _conditions_table(s, status.get("conditions") or [])
    _events(s, events, now)
    return s.render()


def describe_service(svc: Obj, endpoints: Obj | None, events: list[Obj], now: datetime) -> str:
    s = Section()
    spec = svc.get("spec") or {}
    _header(s, svc)
    s.multiline(
        0,
        "Selector",
        [",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items())]
        if spec.get("selector")
        else [],
    )
    s.kv(0, "Type", spec.get("type") or "ClusterIP")
    s.kv(0, "IP", spec.get("clusterIP") or NONE)
    ingress = [i.get("ip") for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]
    if ingress:
        s.kv(0, "LoadBalancer Ingress", ", ".join(i for i in ingress if i))
    for port in spec.get("ports") or []:
        protocol = port.get("protocol") or "TCP"
        s.add(0, f"Port:\t{port.get('name') or '<unset>'}\t{port.get('port')}/{protocol}")
        s.kv(0, "TargetPort", f"{port.get('targetPort', port.get('port'))}/{protocol}")
        if port.get("nodePort"):
            s.add(0, f"NodePort:\t{port.get('name') or '<unset>'}\t{port['nodePort']}/{protocol}")
        s.kv(
            0,
            "Endpoints",
            format_endpoints(endpoints or {}, port_name=port.get("name") or "") if endpoints else NONE,
        )
    s.kv(0, "Session Affinity", spec.get("sessionAffinity") or "None")
    _events(s, events, now)
    return s.render()


def describe_endpoints(ep: Obj, events: list[Obj], now: datetime) -> str:
    s = Section()
    _header(s, ep)
    s.add(0, "Subsets:")
    for subset in ep.get("subsets") or []:
        ready = ",".join(a.get("ip", "") for a in subset.get("addresses") or [])
        not_ready = ",".join(a.get("ip", "") for a in subset.get("notReadyAddresses") or [])
        s.kv(1, "Addresses", ready or NONE)
        s.kv(1, "NotReadyAddresses", not_ready or NONE)
        ports = subset.get("ports") or []
        if ports:
            s.add(1, "Ports:")
            s.add(2, "Name\tPort\tProtocol")
            s.add(2, "----\t----\t--------")
            for p in ports:
                s.add(2, f"{p.get('name') or '<unset>'}\t{p.get('port')}\t{p.get('protocol') or 'TCP'}")
        s.add(0, "")
    _events(s, events, now)
    return s.render()


CONFIG_VOLUME_TYPES = {
    "configMap": "ConfigMap (a volume populated by a ConfigMap)",
    "secret": "Secret (a volume populated by a Secret)",
    "projected": "Projected (a volume that contains injected data from multiple sources)",
    "downwardAPI": "DownwardAPI (a volume populated by information about the pod)",
}


def describe_key_ref(source: Obj) -> str:
    """env valueFrom secretKeyRef / configMapKeyRef as kubectl shows it: where the value comes from."""
    if "secretKeyRef" in source:
        ref = source["secretKeyRef"] or {}
        where = f"<set to the key '{ref.get('key')}' in secret '{ref.get('name')}'>"
    else:
        ref = source["configMapKeyRef"] or {}
        where = f"<set to the key '{ref.get('key')}' of config map '{ref.get('name')}'>"
    return f"{where}\tOptional: {str(bool(ref.get('optional'))).lower()}"


def describe_env_from(source: Obj) -> str:
    kind = "Secret" if "secretRef" in source else "ConfigMap"
    ref = source.get("secretRef") or source.get("configMapRef") or {}
    prefix = f" with prefix '{source['prefix']}'" if source.get("prefix") else ""
    return f"{ref.get('name')}\t{kind}{prefix}\tOptional: {str(bool(ref.get('optional'))).lower()}"


def describe_config_volume(volume: Obj) -> list[tuple[str, str]]:
    """The Type line and details of a configMap, secret, projected or downwardAPI volume (as kubectl)."""
    key = next(k for k in CONFIG_VOLUME_TYPES if k in volume)
    source = volume[key] or {}
    rows = [("Type", CONFIG_VOLUME_TYPES[key])]
    if key == "configMap":
        rows += [("Name", source.get("name", "")), ("Optional", str(bool(source.get("optional"))).lower())]
    elif key == "secret":
        rows += [("SecretName", source.get("secretName", "")),
                 ("Optional", str(bool(source.get("optional"))).lower())]
    elif key == "projected":
        for item in source.get("sources") or []:
            kind = next(iter(item), "")
            rows.append((f"{kind[0].upper()}{kind[1:]}Name" if kind != "downwardAPI" else "DownwardAPI",
                         (item[kind] or {}).get("name", "true")))
    return rows


_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"  # a Secret's stringData may be in it


def _title(s: Section, title: str) -> None:
    s.add(0, "")
    s.add(0, title)
    s.add(0, "====")


def describe_configmap(cm: Obj, events: list[Obj], now: datetime) -> str:
    """As kubectl: each value under its key; binary values by their size."""
    s = Section()
    _header(s, cm, hide=(_LAST_APPLIED,))
    _title(s, "Data")
    for key, value in sorted((cm.get("data") or {}).items()):
        s.add(0, f"{key}:")
        s.add(0, "----")
        s.add(0, str(value))
        s.add(0, "")
    _title(s, "BinaryData")
    for key, value in sorted((cm.get("binaryData") or {}).items()):
        s.add(0, f"{key}: {len(base64.b64decode(value))} bytes")
    s.add(0, "")
    _events(s, events, now)
    return s.render()


def describe_secret(secret: Obj, events: list[Obj], now: datetime) -> str:
    """As kubectl: each key with its size only, never its value."""
    s = Section()
    _header(s, secret, hide=(_LAST_APPLIED,))
    s.add(0, "")
    s.kv(0, "Type", secret.get("type") or "Opaque")
    _title(s, "Data")
    for key, value in sorted((secret.get("data") or {}).items()):
        s.kv(0, key, f"{len(base64.b64decode(value))} bytes")
    _events(s, events, now)
    return s.render()
