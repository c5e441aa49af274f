"""`meshd get` tables: Kubernetes-shaped objects -> kubectl's columns (pure; `now` is passed in)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from meshd.api.ingress import ingress_class_row, ingress_row
from meshd.api.kinds import (
    CONFIGMAP,
    CRONJOB,
    DAEMONSET,
    DEPLOYMENT,
    ENDPOINTS,
    ENDPOINTSLICE,
    EVENT,
    INGRESS,
    INGRESSCLASS,
    JOB,
    LEASE,
    NAMESPACE,
    NODE,
    POD,
    PV,
    PVC,
    REPLICASET,
    SECRET,
    SERVICE,
    STATEFULSET,
    STORAGECLASS,
    Kind,
)
from meshd.manifests.config import data_count
from meshd.api.timefmt import age, human_duration, parse_time

Obj = dict[str, Any]
NONE = "<none>"


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


# --- pods -------------------------------------------------------------------------------------------------


def _sidecars(pod: Obj) -> set[str]:
    """Native sidecars: the init containers with restartPolicy: Always."""
    return {c.get("name", "") for c in _spec(pod).get("initContainers") or [] if c.get("restartPolicy") == "Always"}


def _init_reason(pod: Obj) -> str | None:
    """kubectl's printPod for init containers: the first one not done gives Init:N/M, Init:REASON or
    Init:ExitCode:N; None when every init container completed (or, sidecars, started)."""
    sidecars = _sidecars(pod)
    total = len(_spec(pod).get("initContainers") or [])
    for i, cs in enumerate(_status(pod).get("initContainerStatuses") or []):
        state = cs.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if terminated is not None and _int(terminated.get("exitCode")) == 0:
            continue
        if cs.get("name") in sidecars and cs.get("started"):
            continue
        if terminated is not None:
            if terminated.get("reason"):
                return "Init:" + terminated["reason"]
            signal = _int(terminated.get("signal"))
            return f"Init:Signal:{signal}" if signal else f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
        if waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            return "Init:" + waiting["reason"]
        return f"Init:{i}/{total}"
    return None


def pod_ready(pod: Obj) -> str:
    """READY: containers ready and running / containers in the pod (native sidecars count, as kubectl's)."""
    sidecars = _sidecars(pod)
    total = (len(_spec(pod).get("containers") or []) or len(_status(pod).get("containerStatuses") or [])) \
        + len(sidecars)
    ready = sum(
        1
        for cs in _status(pod).get("containerStatuses") or []
        if cs.get("ready") and "running" in (cs.get("state") or {})
    ) + sum(1 for cs in _status(pod).get("initContainerStatuses") or []
            if cs.get("name") in sidecars and cs.get("started") and cs.get("ready"))
    return f"{ready}/{total}"


def pod_status(pod: Obj) -> str:
    """STATUS as kubectl computes it: the phase, overridden by an init container's progress (Init:1/2,
    Init:CrashLoopBackOff) while the pod initializes, else by a container's waiting/terminated reason."""
    status = _status(pod)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    init = _init_reason(pod)
    if init is not None and not _condition_true(status, "Initialized"):
        reason = init
    else:
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            state = cs.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                signal = _int(terminated.get("signal"))
                reason = f"Signal:{signal}" if signal else f"ExitCode:{_int(terminated.get('exitCode'))}"
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(status, "Ready") else "NotReady"
    if _meta(pod).get("deletionTimestamp") and status.get("phase") not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return reason


def pod_restarts(pod: Obj, now: datetime) -> str:
    """RESTARTS: the sum over containers, with the age of the last restart ("3 (42s ago)"); while the pod
    initializes, over the init containers (as kubectl counts)."""
    restarts = 0
    last: datetime | None = None
    status = _status(pod)
    initializing = _init_reason(pod) is not None and not _condition_true(status, "Initialized")
    sidecars = _sidecars(pod)
    counted = [cs for cs in status.get("initContainerStatuses") or []
               if initializing or cs.get("name") in sidecars]
    if not initializing:
        counted += status.get("containerStatuses") or []
    for cs in counted:
        restarts += _int(cs.get("restartCount"))
        finished = parse_time(((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
        if finished is not None and (last is None or finished > last):
            last = finished
    if restarts and last is not None:
        return f"{restarts} ({human_duration((now - last).total_seconds())} ago)"
    return str(restarts)


def _condition_true(status: Obj, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or [])


def pod_row(pod: Obj, now: datetime, wide: bool) -> list[str]:
    row = [_meta(pod).get("name", ""), pod_ready(pod), pod_status(pod), pod_restarts(pod, now)]
    row.append(age(_meta(pod).get("creationTimestamp"), now))
    if wide:
        row += [_status(pod).get("podIP") or NONE, _spec(pod).get("nodeName") or NONE, NONE, NONE]
    return row


# --- workloads --------------------------------------------------------------------------------------------


def format_selector(selector: Obj | None) -> str:
    """A label selector as text: "app=web,tier in (a,b)"; "<none>" when empty."""
    if not selector:
        return NONE
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        if op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            parts.append(f"{key} {op.lower()} ({','.join(values)})")
    return ",".join(parts) or NONE


def _template_columns(obj: Obj) -> list[str]:
    containers = ((_spec(obj).get("template") or {}).get("spec") or {}).get("containers") or []
    return [
        ",".join(c.get("name", "") for c in containers) or NONE,
        ",".join(c.get("image", "") for c in containers) or NONE,
        format_selector(_spec(obj).get("selector")),
    ]


def _replicas(obj: Obj) -> int:
    value = _spec(obj).get("replicas")
    return 1 if value is None else _int(value)


def deployment_row(dep: Obj, now: datetime, wide: bool) -> list[str]:
    status = _status(dep)
    row = [
        _meta(dep).get("name", ""),
        f"{_int(status.get('readyReplicas'))}/{_replicas(dep)}",
        str(_int(status.get("updatedReplicas"))),
        str(_int(status.get("availableReplicas"))),
        age(_meta(dep).get("creationTimestamp"), now),
    ]
    return row + _template_columns(dep) if wide else row


def replicaset_row(rs: Obj, now: datetime, wide: bool) -> list[str]:
    status = _status(rs)
    row = [
        _meta(rs).get("name", ""),
        str(_replicas(rs)),
        str(_int(status.get("replicas"))),
        str(_int(status.get("readyReplicas"))),
        age(_meta(rs).get("creationTimestamp"), now),
    ]
    return row + _template_columns(rs) if wide else row


def statefulset_row(sts: Obj, now: datetime, wide: bool) -> list[str]:
    row = [_meta(sts).get("name", ""), f"{_int(_status(sts).get('readyReplicas'))}/{_replicas(sts)}",
           age(_meta(sts).get("creationTimestamp"), now)]
    return row + _template_columns(sts)[:2] if wide else row


def daemonset_row(ds: Obj, now: datetime, wide: bool) -> list[str]:
    status = _status(ds)
    node_selector = (_spec(ds).get("template") or {}).get("spec", {}).get("nodeSelector") or {}
    row = [
        _meta(ds).get("name", ""),
        *(str(_int(status.get(k))) for k in ("desiredNumberScheduled", "currentNumberScheduled", "numberReady",
                                              "updatedNumberScheduled", "numberAvailable")),
        ",".join(f"{k}={v}" for k, v in sorted(node_selector.items())) or NONE,
        age(_meta(ds).get("creationTimestamp"), now),
    ]
    return row + _template_columns(ds) if wide else row


# --- services and endpoints -------------------------------------------------------------------------------


def service_ports(svc: Obj) -> str:
    """PORT(S): "80/TCP,443:30443/TCP"; "<none>" without ports."""
    parts = []
    for port in _spec(svc).get("ports") or []:
        node_port = port.get("nodePort")
        number = f"{port.get('port')}:{node_port}" if node_port else str(port.get("port"))
        parts.append(f"{number}/{port.get('protocol') or 'TCP'}")
    return ",".join(parts) or NONE


def _external_ip(svc: Obj) -> str:
    spec = _spec(svc)
    if spec.get("type") == "ExternalName":  # kubectl's printer: the name DNS answers a CNAME to
        return str(spec.get("externalName") or NONE)
    external = list(spec.get("externalIPs") or [])
    if (spec.get("type") or "ClusterIP") == "LoadBalancer":
        ingress = [
            i.get("ip") or i.get("hostname")
            for i in (_status(svc).get("loadBalancer") or {}).get("ingress") or []
        ]
        external = [x for x in ingress if x] + external
        return ",".join(external) or "<pending>"
    return ",".join(external) or NONE


def service_row(svc: Obj, now: datetime, wide: bool) -> list[str]:
    spec = _spec(svc)
    row = [
        _meta(svc).get("name", ""),
        spec.get("type") or "ClusterIP",
        spec.get("clusterIP") or NONE,
        _external_ip(svc),
        service_ports(svc),
        age(_meta(svc).get("creationTimestamp"), now),
    ]
    if wide:
        selector = spec.get("selector") or {}
        row.append(",".join(f"{k}={v}" for k, v in selector.items()) or NONE)
    return row


def _host_port(ip: str, port: Any) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def format_endpoints(ep: Obj, limit: int = 3, port_name: str | None = None) -> str:
    """ENDPOINTS: ready address:port pairs, the first three then " + N more..."; "<none>" when none.

    With port_name, only that port (as `kubectl describe service` shows each port's endpoints).
    """
    shown: list[str] = []
    count = 0
    for subset in ep.get("subsets") or []:
        addresses = sorted(
            a.get("ip", "") for a in subset.get("addresses") or []
        )  # as Kubernetes repacks them
        ports = subset.get("ports") or [None]
        for port in ports:
            if port is not None and port_name is not None and (port.get("name") or "") != port_name:
                continue
            count += len(addresses)
            for ip in addresses:
                if len(shown) < limit:
                    shown.append(ip if port is None else _host_port(ip, port.get("port")))
    if not shown:
        return NONE
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if count > limit else text


def endpoints_row(ep: Obj, now: datetime, wide: bool) -> list[str]:
    return [_meta(ep).get("name", ""), format_endpoints(ep), age(_meta(ep).get("creationTimestamp"), now)]


def endpointslice_row(es: Obj, now: datetime, wide: bool) -> list[str]:
    """NAME ADDRESSTYPE PORTS ENDPOINTS AGE, as kubectl prints them ("<unset>" for none; three, then "+ N more")."""
    ports = ",".join(str(p.get("port", "")) for p in es.get("ports") or []) or "<unset>"
    addresses = [a for e in es.get("endpoints") or [] for a in e.get("addresses") or []]
    shown = ",".join(addresses[:3]) + (f" + {len(addresses) - 3} more..." if len(addresses) > 3 else "")
    return [_meta(es).get("name", ""), str(es.get("addressType", "")), ports, shown or "<unset>",
            age(_meta(es).get("creationTimestamp"), now)]


# --- events -----------------------------------------------------------------------------------------------


def event_row(ev: Obj, now: datetime, wide: bool) -> list[str]:
    involved = ev.get("involvedObject") or ev.get("regarding") or {}  # v1, events.k8s.io/v1
    last = (ev.get("lastTimestamp") or ev.get("deprecatedLastTimestamp") or ev.get("eventTime")
            or _meta(ev).get("creationTimestamp"))
    return [
        age(last, now),
        ev.get("type") or "Normal",
        ev.get("reason") or "",
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        " ".join(str(ev.get("message") or ev.get("note") or "").split()),
    ]


# --- namespaces and nodes ---------------------------------------------------------------------------------


def namespace_row(ns: Obj, now: datetime, wide: bool) -> list[str]:
    return [_meta(ns).get("name", ""), _status(ns).get("phase") or "", age(_meta(ns).get("creationTimestamp"), now)]


def node_row(node: Obj, now: datetime, wide: bool) -> list[str]:
    status = _status(node)
    ready = "Ready" if _condition_true(status, "Ready") else "NotReady"
    if (node.get("spec") or {}).get("unschedulable"):  # cordoned, as kubectl's printer says it
        ready += ",SchedulingDisabled"
    roles = sorted(k.split("/", 1)[1] for k in (_meta(node).get("labels") or {})
                   if k.startswith("node-role.kubernetes.io/"))
    info = status.get("nodeInfo") or {}
    row = [_meta(node).get("name", ""), ready, ",".join(roles) or NONE,
           age(_meta(node).get("creationTimestamp"), now), info.get("kubeletVersion", "")]
    if wide:
        addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
        row += [addresses.get("InternalIP") or NONE, addresses.get("ExternalIP") or NONE,
                info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
                info.get("containerRuntimeVersion") or "<unknown>"]
    return row


def lease_row(lease: Obj, now: datetime, wide: bool) -> list[str]:
    return [_meta(lease).get("name", ""), (lease.get("spec") or {}).get("holderIdentity") or "",
            age(_meta(lease).get("creationTimestamp"), now)]


def configmap_row(cm: Obj, now: datetime, wide: bool) -> list[str]:
    return [_meta(cm).get("name", ""), str(data_count(cm)), age(_meta(cm).get("creationTimestamp"), now)]


def secret_row(secret: Obj, now: datetime, wide: bool) -> list[str]:
    return [_meta(secret).get("name", ""), str(secret.get("type") or "Opaque"), str(data_count(secret)),
            age(_meta(secret).get("creationTimestamp"), now)]


# --- storage ----------------------------------------------------------------------------------------------

_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}


Row = Callable[[Obj, datetime, bool], list[str]]


# --- the kinds meshd keeps without acting on them (meshd.model.kept), as kubectl's columns show them ---------


def created_at_row(obj: Obj, now: datetime, wide: bool) -> list[str]:
    """Role, ClusterRole, LimitRange: kubectl shows when it was made, not its age."""
    return [_meta(obj).get("name", ""), str(_meta(obj).get("creationTimestamp") or "")]


def serviceaccount_row(sa: Obj, now: datetime, wide: bool) -> list[str]:
    return [_meta(sa).get("name", ""), str(len(sa.get("secrets") or [])), age(_meta(sa).get("creationTimestamp"), now)]


def binding_row(binding: Obj, now: datetime, wide: bool) -> list[str]:
    ref = binding.get("roleRef") or {}
    return [_meta(binding).get("name", ""), f"{ref.get('kind', '')}/{ref.get('name', '')}",
            age(_meta(binding).get("creationTimestamp"), now)]


def networkpolicy_row(policy: Obj, now: datetime, wide: bool) -> list[str]:
    selector = _spec(policy).get("podSelector")
    return [_meta(policy).get("name", ""), format_selector(selector) if selector else NONE,
            age(_meta(policy).get("creationTimestamp"), now)]


def pdb_row(pdb: Obj, now: datetime, wide: bool) -> list[str]:
    spec = _spec(pdb)
    return [_meta(pdb).get("name", ""), str(spec.get("minAvailable", "N/A")), str(spec.get("maxUnavailable", "N/A")),
            str(_int(_status(pdb).get("disruptionsAllowed"))), age(_meta(pdb).get("creationTimestamp"), now)]


def hpa_row(hpa: Obj, now: datetime, wide: bool) -> list[str]:
    spec = _spec(hpa)
    target = spec.get("scaleTargetRef") or {}
    return [_meta(hpa).get("name", ""), f"{target.get('kind', '')}/{target.get('name', '')}", "<unknown>",
            str(spec.get("minReplicas", 1)), str(spec.get("maxReplicas", "")),
            str(_int(_status(hpa).get("currentReplicas"))), age(_meta(hpa).get("creationTimestamp"), now)]


def quota_row(quota: Obj, now: datetime, wide: bool) -> list[str]:
    hard = _spec(quota).get("hard") or {}
    requests = ", ".join(f"{k}: 0/{v}" for k, v in sorted(hard.items()) if not k.startswith("limits."))
    limits = ", ".join(f"{k}: 0/{v}" for k, v in sorted(hard.items()) if k.startswith("limits."))
    return [_meta(quota).get("name", ""), age(_meta(quota).get("creationTimestamp"), now), requests, limits]


def priorityclass_row(pc: Obj, now: datetime, wide: bool) -> list[str]:
    return [_meta(pc).get("name", ""), str(pc.get("value", 0)), str(bool(pc.get("globalDefault"))).lower(),
            age(_meta(pc).get("creationTimestamp"), now), str(pc.get("preemptionPolicy") or "PreemptLowerPriority")]


KEPT_COLUMNS: dict[str, tuple[list[str], list[str], Row]] = {
    "ServiceAccount": (["NAME", "SECRETS", "AGE"], [], serviceaccount_row),
    "Role": (["NAME", "CREATED AT"], [], created_at_row),
    "ClusterRole": (["NAME", "CREATED AT"], [], created_at_row),
    "RoleBinding": (["NAME", "ROLE", "AGE"], [], binding_row),
    "ClusterRoleBinding": (["NAME", "ROLE", "AGE"], [], binding_row),
    "NetworkPolicy": (["NAME", "POD-SELECTOR", "AGE"], [], networkpolicy_row),
    "PodDisruptionBudget": (["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"], [], pdb_row),
    "HorizontalPodAutoscaler": (["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"], [],
                                hpa_row),
    "ResourceQuota": (["NAME", "AGE", "REQUEST", "LIMIT"], [], quota_row),
    "LimitRange": (["NAME", "CREATED AT"], [], created_at_row),
    "PriorityClass": (["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"], [], priorityclass_row),
}


def access_modes(modes: list[str] | None) -> str:
    """kubectl's short form, in its order: "RWO,ROX"."""
    given = set(modes or [])
    return ",".join(short for mode, short in _MODES.items() if mode in given)


def pvc_row(pvc: Obj, now: datetime, wide: bool) -> list[str]:
    status = _status(pvc)
    phase = "Terminating" if _meta(pvc).get("deletionTimestamp") else status.get("phase") or ""
    bound = status.get("phase") == "Bound"
    row = [_meta(pvc).get("name", ""), phase, _spec(pvc).get("volumeName") or "",
           (status.get("capacity") or {}).get("storage", "") if bound else "",
           access_modes(status.get("accessModes")) if bound else "",
           _spec(pvc).get("storageClassName") or "", age(_meta(pvc).get("creationTimestamp"), now)]
    if wide:
        row.append(_spec(pvc).get("volumeMode") or "Filesystem")
    return row


def pv_row(pv: Obj, now: datetime, wide: bool) -> list[str]:
    spec, status = _spec(pv), _status(pv)
    ref = spec.get("claimRef") or {}
    claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref.get("name") else ""
    phase = "Terminating" if _meta(pv).get("deletionTimestamp") else status.get("phase") or ""
    row = [_meta(pv).get("name", ""), (spec.get("capacity") or {}).get("storage", ""),
           access_modes(spec.get("accessModes")), spec.get("persistentVolumeReclaimPolicy") or "", phase, claim,
           spec.get("storageClassName") or "", status.get("reason") or "",
           age(_meta(pv).get("creationTimestamp"), now)]
    if wide:
        row.append(spec.get("volumeMode") or "Filesystem")
    return row


def storageclass_row(sc: Obj, now: datetime, wide: bool) -> list[str]:
    name = _meta(sc).get("name", "")
    annotations = _meta(sc).get("annotations") or {}
    if "true" in (annotations.get("storageclass.kubernetes.io/is-default-class"),
                  annotations.get("storageclass.beta.kubernetes.io/is-default-class")):
        name += " (default)"
    return [name, sc.get("provisioner", ""), sc.get("reclaimPolicy") or "Delete",
            sc.get("volumeBindingMode") or "Immediate", str(bool(sc.get("allowVolumeExpansion"))).lower(),
            age(_meta(sc).get("creationTimestamp"), now)]


# --- the table registry -----------------------------------------------------------------------------------

# --- jobs and cronjobs ------------------------------------------------------------------------------


def job_status(job: Obj) -> str:
    """STATUS: the last true condition among kubectl's, else Running (Terminating while deleted)."""
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    shown = ("Complete", "Failed", "FailureTarget", "SuccessCriteriaMet", "Suspended")
    status = "Running"
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in shown:
            status = condition["type"]
    return status


def job_completions(job: Obj) -> str:
    spec, status = job.get("spec") or {}, job.get("status") or {}
    succeeded = int(status.get("succeeded") or 0)
    if spec.get("completions") is not None:
        return f"{succeeded}/{spec['completions']}"
    parallelism = int(spec.get("parallelism") or 0)
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def job_duration(job: Obj, now: datetime) -> str:
    status = job.get("status") or {}
    start = parse_time(status.get("startTime"))
    if start is None:
        return ""
    end = parse_time(status.get("completionTime")) or now
    return human_duration((end - start).total_seconds())


def job_row(job: Obj, now: datetime, wide: bool) -> list[str]:
    meta = job.get("metadata") or {}
    cells = [meta.get("name", ""), job_status(job), job_completions(job), job_duration(job, now),
             age(meta.get("creationTimestamp"), now)]
    if wide:
        cells += _template_columns(job)
    return cells


def cronjob_row(cron: Obj, now: datetime, wide: bool) -> list[str]:
    meta, spec, status = cron.get("metadata") or {}, cron.get("spec") or {}, cron.get("status") or {}
    last = status.get("lastScheduleTime")
    cells = [meta.get("name", ""), spec.get("schedule", ""), spec.get("timeZone") or NONE,
             "True" if spec.get("suspend") else "False", str(len(status.get("active") or [])),
             age(last, now) if last else NONE, age(meta.get("creationTimestamp"), now)]
    if wide:
        cells += _template_columns({"spec": (spec.get("jobTemplate") or {}).get("spec") or {}})
    return cells



COLUMNS: dict[str, tuple[list[str], list[str], Row]] = {
    POD.kind: (
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"],
        pod_row,
    ),
    DEPLOYMENT.kind: (
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ["CONTAINERS", "IMAGES", "SELECTOR"],
        deployment_row,
    ),
    REPLICASET.kind: (
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        ["CONTAINERS", "IMAGES", "SELECTOR"],
        replicaset_row,
    ),
    STATEFULSET.kind: (["NAME", "READY", "AGE"], ["CONTAINERS", "IMAGES"], statefulset_row),
    DAEMONSET.kind: (
        ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"],
        ["CONTAINERS", "IMAGES", "SELECTOR"],
        daemonset_row,
    ),
    SERVICE.kind: (
        ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
        ["SELECTOR"],
        service_row,
    ),
    ENDPOINTS.kind: (["NAME", "ENDPOINTS", "AGE"], [], endpoints_row),
    ENDPOINTSLICE.kind: (["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], [], endpointslice_row),
    PVC.kind: (["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "AGE"], ["VOLUMEMODE"],
               pvc_row),
    PV.kind: (["NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM", "STORAGECLASS", "REASON",
               "AGE"], ["VOLUMEMODE"], pv_row),
    STORAGECLASS.kind: (["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION",
                         "AGE"], [], storageclass_row),
    EVENT.kind: (["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], [], event_row),
    NAMESPACE.kind: (["NAME", "STATUS", "AGE"], [], namespace_row),
    LEASE.kind: (["NAME", "HOLDER", "AGE"], [], lease_row),
    INGRESS.kind: (["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"], [], ingress_row),
    INGRESSCLASS.kind: (["NAME", "CONTROLLER", "PARAMETERS", "AGE"], [], ingress_class_row),
    CONFIGMAP.kind: (["NAME", "DATA", "AGE"], [], configmap_row),
    SECRET.kind: (["NAME", "TYPE", "DATA", "AGE"], [], secret_row),
    JOB.kind: (["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], ["CONTAINERS", "IMAGES", "SELECTOR"], job_row),
    CRONJOB.kind: (["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"],
                   ["CONTAINERS", "IMAGES", "SELECTOR"], cronjob_row),
    NODE.kind: (
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"],
        node_row,
    ),
    **KEPT_COLUMNS,
}


def header(kind: Kind, *, wide: bool, all_namespaces: bool, show_labels: bool = False) -> list[str]:
    base, extra, _ = COLUMNS[kind.kind]
    cols = base + (extra if wide else []) + (["LABELS"] if show_labels else [])
    return (["NAMESPACE"] if all_namespaces else []) + cols


def row(
    kind: Kind,
    obj: Obj,
    now: datetime,
    *,
    wide: bool,
    all_namespaces: bool,
    prefix_kind: bool = False,
    show_labels: bool = False,
) -> list[str]:
    """One object's cells; with prefix_kind the name reads "deployment.apps/web" (as in `get all`)."""
    cells = COLUMNS[kind.kind][2](obj, now, wide)
    if show_labels:
        cells.append(
            ",".join(f"{k}={v}" for k, v in sorted((_meta(obj).get("labels") or {}).items())) or NONE
        )
    if prefix_kind and kind.kind != EVENT.kind:
        cells[0] = f"{kind.display}/{cells[0]}"
    if all_namespaces:
        cells.insert(0, _meta(obj).get("namespace", ""))
    return cells


def table_rows(
    kind: Kind,
    objects: list[Obj],
    now: datetime,
    *,
    wide: bool = False,
    all_namespaces: bool = False,
    prefix_kind: bool = False,
    headers: bool = True,
    show_labels: bool = False,
) -> list[list[str]]:
    """Header (optional) + one row per object, in the order given."""
    flags = {"wide": wide, "all_namespaces": all_namespaces, "show_labels": show_labels}
    rows = [header(kind, **flags)] if headers else []
    rows += [row(kind, o, now, prefix_kind=prefix_kind, **flags) for o in objects]
    return rows
