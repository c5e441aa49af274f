"""The controller's state as Kubernetes API objects (v1 Pod, apps/v1 Deployment, v1 Endpoints, v1 List...),
so tools written for kubectl's JSON work on meshd's."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from meshd.api import deleting
from meshd.controller import deletion
from meshd.controller.loop import Controller, ObjectRecord
from meshd.controller.pod import ContainerStatus, PodWorker
from meshd.controller.progress import progressing_condition, restored
from meshd.controller.records import REVISION_ANNOTATION, ReplicaSetRecord
from meshd.external.listeners import load_balancer_status
from meshd.manifests.config import render_config
from meshd.manifests.render import qos_class, render_pod_spec
from meshd.model.endpoints import ServiceKey, port_groups
from meshd.model.objects import Deployment, KeptObject, ReplicaSet, Service
from meshd.registry import Registry


def rfc3339(ts: float | None) -> str | None:
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def kube_list(items: list[dict[str, Any]], *, resource_version: int = 0) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": str(resource_version)},
            "items": items}


def stored_metadata(controller: Controller, record: ObjectRecord) -> dict[str, Any]:
    """An applied object's metadata as the store keeps it: uid, resourceVersion, generation,
    creationTimestamp (a copy the caller may change)."""
    obj = record.obj
    stored = controller.store.get(obj.kind, obj.metadata.namespace, obj.metadata.name)
    if stored is None:  # not persisted (a controller used without a store, as unit tests do)
        return _metadata(dict(obj.raw), namespace=obj.metadata.namespace, name=obj.metadata.name,
                         created=record.created, uid=record.uid, generation=record.generation)
    return copy.deepcopy(dict(stored["metadata"]))


def pod_uid(worker: PodWorker) -> str:
    """A pod's uid: stable for the pod's life, across agent restarts too (from its name and creation time)."""
    return worker.uid


def _metadata(raw: dict[str, Any], *, namespace: str, name: str, created: float, uid: str,
              generation: int | None = None) -> dict[str, Any]:
    meta = copy.deepcopy(dict(raw.get("metadata") or {}))
    meta.update(name=name, namespace=namespace, uid=uid, creationTimestamp=rfc3339(created))
    if generation is not None:
        meta["generation"] = generation
    return meta


def _container_state(status: ContainerStatus) -> dict[str, Any]:
    if status.phase == "running":
        return {"running": {"startedAt": rfc3339(status.started_at)}}
    if status.phase == "terminated":
        return {"terminated": {"exitCode": status.exit_code, "reason": status.reason, "message": status.message,
                               "startedAt": rfc3339(status.started_at),
                               "finishedAt": rfc3339(status.finished_at)}}
    return {"waiting": {"reason": status.reason, "message": status.message}}


def _incomplete(worker: PodWorker) -> list[str]:
    """The init containers not yet done (the Initialized condition's message names them)."""
    return [c.name for c in worker.spec.init_containers
            if not (worker.containers[c.name].phase == "terminated" and worker.containers[c.name].exit_code == 0)
            and not worker.container_started(c.name)]


def pod(worker: PodWorker, *, uid: str = "", owner_uid: str = "", node: str = "meshd") -> dict[str, Any]:
    """A v1 Pod; `uid` is a bare Pod's (its object's), `owner_uid` the uid of the ReplicaSet that runs it."""
    identity = worker.identity
    owner_refs = []
    if identity.replicaset:
        owner_refs.append({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": identity.replicaset,
                           "uid": owner_uid, "controller": True, "blockOwnerDeletion": True})
    labels = dict(worker.labels)
    spec = render_pod_spec(worker.spec)  # the whole spec (env, resources, probes, mounts), with the defaults
    spec["nodeName"] = node
    statuses: list[dict[str, Any]] = []
    init_statuses: list[dict[str, Any]] = []
    for c in (*worker.spec.init_containers, *worker.spec.containers):
        container = worker.containers[c.name]
        entry: dict[str, Any] = {
            "name": c.name,
            "image": c.image,
            "imageID": "",
            "containerID": f"docker://{container.id}" if container.id else "",
            "ready": container.ready,
            "started": worker.container_started(c.name),
            "restartCount": container.restart_count,
            "state": _container_state(container),
        }
        if container.last_termination:
            last = container.last_termination
            entry["lastState"] = {"terminated": {
                "exitCode": last["exitCode"], "reason": last["reason"], "message": last["message"],
                "startedAt": rfc3339(last["startedAt"]), "finishedAt": rfc3339(last["finishedAt"])}}
        else:
            entry["lastState"] = {}
        probes = worker.probe_reports(c.name)
        if probes is not None:
            entry["probes"] = probes
        (init_statuses if worker.is_init(c.name) else statuses).append(entry)
    ready = worker.ready
    phase = worker.phase
    pod_status: dict[str, Any] = {
        "phase": phase,
        "conditions": [
            {"type": "PodScheduled", "status": "True" if worker.scheduled else "False",
             **({"reason": worker.reason, "message": worker.message} if not worker.scheduled and worker.reason else {})},
            *([{"type": "Initialized", "status": "True" if worker.initialized else "False",
                **({} if worker.initialized else {"reason": "ContainersNotInitialized",
                                                  "message": "containers with incomplete status: ["
                                                  + " ".join(_incomplete(worker)) + "]"})}]
              if worker.spec.init_containers else [{"type": "Initialized", "status": "True"}]),
            {"type": "Ready", "status": "True" if ready else "False"},
            {"type": "ContainersReady", "status": "True" if ready else "False"},
        ],
        "podIP": worker.address,
        "podIPs": [{"ip": worker.address}] if worker.address else [],
        "hostIP": "127.0.0.1",
        "startTime": rfc3339(worker.created),
        "containerStatuses": statuses,
        "qosClass": qos_class(spec),
    }
    if init_statuses:
        pod_status["initContainerStatuses"] = init_statuses
    if not worker.scheduled:  # as the scheduler leaves it: Pending, no containers yet; why is in PodScheduled
        pod_status["containerStatuses"] = []
    elif worker.reason:
        pod_status["reason"], pod_status["message"] = worker.reason, worker.message
    metadata: dict[str, Any] = {
        "name": identity.name,
        "namespace": identity.namespace,
        "uid": uid or pod_uid(worker),
        "labels": labels,
        "annotations": dict(worker.annotations),
        "creationTimestamp": rfc3339(worker.created),
        **({"ownerReferences": owner_refs} if owner_refs else {}),  # a bare pod has none (the API omits an empty list)
    }
    if worker.terminating:
        metadata["deletionTimestamp"] = rfc3339(time.time())
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": spec,
        "status": pod_status,
    }


def stored_pod(obj: Any, live_status: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Pod object of a cluster's store as the API shows it (its node's kubelet writes its status; this agent's
    own pods show their status live, `live_status`)."""
    shown = copy.deepcopy(dict(obj))
    shown.setdefault("apiVersion", "v1")
    status = live_status if live_status is not None else shown.get("status") or {}
    status.setdefault("phase", "Pending")
    status.setdefault("conditions", [])
    shown["status"] = status
    return shown


def _pod_objects(controller: Controller, namespace: str | None, name: str | None) -> list[tuple[Any, Any]]:
    """The Pod objects of the store (of a namespace, None: all; of one name, None: all) with their key."""
    if name is None:
        return controller.store.scan("Pod", namespace)
    obj = controller.store.get("Pod", namespace or "", name)
    return [] if obj is None else [((namespace or "", name), obj)]


def _workers(controller: Controller, namespace: str | None, name: str | None) -> list[tuple[Any, PodWorker]]:
    if name is None:
        return [(k, w) for k, w in controller.pods.items() if namespace in (None, k[0])]
    worker = controller.pods.get((namespace or "", name))
    return [] if worker is None else [((namespace or "", name), worker)]


def cluster_pods(controller: Controller, namespace: str | None, *, name: str | None = None) -> list[dict[str, Any]]:
    """Every node's pods (or the one of that name), from the shared store; this node's status live; a pod of this
    node whose object is gone but that still stops is shown (Terminating) until it stopped."""
    kubelet = controller.kubelet
    out = {}
    for key, obj in _pod_objects(controller, namespace, name):
        worker = controller.pods.get(key)
        out[key] = stored_pod(obj, kubelet.status(worker) if worker else None)
    for key, worker in _workers(controller, namespace, name):
        if key not in out:
            shown = pod(worker, node=kubelet.node)
            shown["status"] = kubelet.status(worker)
            out[key] = shown
    return [out[k] for k in sorted(out)]


def node_pods(controller: Controller, namespace: str | None, render: Callable[[PodWorker], dict[str, Any]], *,
              name: str | None = None) -> list[dict[str, Any]]:
    """A standalone agent's pods: the Pod objects of its store (meshd.cluster.podobjects), as the API server
    serves what etcd holds, with their uid and resourceVersion, spec and status as their workers show them live
    (what probes last said too). A pod whose object is not written yet is not shown (it does not start before
    either: meshd.controller.admission); one whose worker went is shown as stored while it is Terminating (a
    user's finalizer holds it), else not."""
    out = []
    for key, obj in _pod_objects(controller, namespace, name):
        meta = obj["metadata"]
        worker = controller.pods.get(key)
        if worker is not None:
            shown = render(worker)
            if shown["metadata"]["uid"] == meta["uid"]:  # (not the object of an older pod of that name)
                shown["metadata"]["resourceVersion"] = meta["resourceVersion"]
            out.append(shown)
        elif meta.get("deletionTimestamp"):
            out.append(stored_pod(obj))
    return out


def replicaset(controller: Controller, rs: ReplicaSetRecord) -> dict[str, Any]:
    view = controller.replicaset_view(rs)
    pods = controller.pods_of(rs)
    meta = _metadata(dict(rs.rs.raw), namespace=rs.namespace, name=rs.name, created=rs.created, uid=rs.uid)
    if rs.owner_kind == "Deployment":
        owner = controller.objects.get(("Deployment", rs.namespace, rs.owner))
        stored = controller.store.get("ReplicaSet", rs.namespace, rs.name)
        refs: list[dict[str, Any]] = list(stored["metadata"].get("ownerReferences") or []) if stored else []
        owner_uid = owner.uid if owner else (refs[0].get("uid", "") if refs else "")
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": rs.owner,
                                    "uid": owner_uid, "controller": True, "blockOwnerDeletion": True}]
        if stored is not None:
            meta["resourceVersion"] = stored["metadata"]["resourceVersion"]
        meta.setdefault("annotations", {})[REVISION_ANNOTATION] = str(rs.revision)
    if ("ReplicaSet", rs.namespace, rs.name) in controller.terminating:  # a bare one being deleted
        meta = deleting.with_deletion(meta, controller.store.get("ReplicaSet", rs.namespace, rs.name))
    elif rs.owner_kind == "Deployment" and ("Deployment", rs.namespace, rs.owner) in controller.terminating:
        deleted = controller.store.get("Deployment", rs.namespace, rs.owner)  # in the foreground: it is too
        meta = deletion.foreground_dependent(meta, deleted["metadata"] if deleted else None)
    spec = copy.deepcopy(dict(rs.rs.raw.get("spec") or {}))
    spec["replicas"] = rs.replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": meta,
        "spec": spec,
        "status": {
            "replicas": view.pods,
            "fullyLabeledReplicas": view.pods,
            "readyReplicas": sum(1 for p in pods if p.ready),
            "availableReplicas": view.available,
            "observedGeneration": 1,
        },
    }


def deployment(controller: Controller, record: ObjectRecord) -> dict[str, Any]:
    obj: Deployment = record.obj  # type: ignore[assignment]
    namespace, name = obj.metadata.namespace, obj.metadata.name
    status = controller.deployment_status(record)
    new, total, ready, available, updated = (status.new, status.current, status.ready, status.available,
                                              status.updated)
    progress = controller.progress.get((namespace, name)) or restored(  # the leader's, else as stored
        controller.store.get("Deployment", namespace, name), snapshot=(), now=time.time())
    conditions: list[dict[str, Any]] = [{
        "type": "Available",
        "status": "True" if available >= obj.replicas - _max_unavailable(obj) else "False",
        "reason": "MinimumReplicasAvailable" if available >= obj.replicas - _max_unavailable(obj)
        else "MinimumReplicasUnavailable",
        "message": f"Deployment has {'minimum' if available >= obj.replicas - _max_unavailable(obj) else 'not minimum'}"
                   " availability.",
    }]
    if progress is not None:
        conditions.append(progressing_condition(progress, new.name if new else ""))
    # another agent than the cluster's leader has no progress of its own: the leader made the ReplicaSet of this
    # template, so it saw this generation (what `kubectl rollout status` waits for)
    seen = progress is not None or (controller.cluster is not None and not controller.leading and new is not None)
    observed = record.generation if seen else max(record.generation - 1, 0)
    meta = stored_metadata(controller, record)
    if new:
        meta.setdefault("annotations", {})[REVISION_ANNOTATION] = str(new.revision)
    spec = copy.deepcopy(dict(obj.raw.get("spec") or {}))
    spec["replicas"] = obj.replicas
    spec.setdefault("strategy", {"type": obj.strategy, **(
        {"rollingUpdate": {"maxSurge": obj.rolling_update.max_surge,
                           "maxUnavailable": obj.rolling_update.max_unavailable}}
        if obj.strategy == "RollingUpdate" else {})})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": spec,
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": max(obj.replicas - available, 0),
            "conditions": conditions,
        },
    }


def _max_unavailable(obj: Deployment) -> int:
    from meshd.controller.plan import resolve_surge

    if obj.strategy != "RollingUpdate":
        return 0
    return resolve_surge(obj.rolling_update.max_unavailable, obj.replicas, round_up=False)


def service(controller: Controller, record: ObjectRecord, registry: Registry) -> dict[str, Any]:
    obj: Service = record.obj  # type: ignore[assignment]
    info = registry.service(ServiceKey(obj.metadata.namespace, obj.metadata.name))
    spec = copy.deepcopy(dict(obj.raw.get("spec") or {}))
    if obj.type == "ExternalName":  # no address at all: neither field is shown (as the API server)
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
    else:
        spec["clusterIP"] = "None" if obj.headless else (obj.cluster_ip or (info.address if info else None))
        spec["clusterIPs"] = [spec["clusterIP"]]
        # the API server's defaults (kubectl describe shows them; meshd is IPv4 and balances every client alike)
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("type", "ClusterIP")
    spec["ports"] = [{**({"name": p.name} if p.name else {}), "port": p.port, "targetPort": p.target_port,
                      "protocol": p.protocol, **({"appProtocol": p.app_protocol} if p.app_protocol else {}),
                      **({"nodePort": p.node_port} if p.node_port is not None else {})}
                     for p in obj.ports]
    if obj.type in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": stored_metadata(controller, record),
        "spec": spec,
        "status": {"loadBalancer": load_balancer_status(obj, controller.external)},
    }


def config_object(controller: Controller, record: ObjectRecord) -> dict[str, Any]:
    """A v1 ConfigMap or Secret as the API server shows it (a Secret's data in base64, no stringData)."""
    obj = record.obj
    return {"apiVersion": "v1", "kind": obj.kind, "metadata": stored_metadata(controller, record),
            **render_config(obj)}  # type: ignore[arg-type]


def kept_object(controller: Controller, record: ObjectRecord) -> dict[str, Any]:
    """An object of a kind meshd keeps without acting on it (meshd.model.kept), as given, with the store's
    metadata."""
    obj: KeptObject = record.obj  # type: ignore[assignment]
    meta = stored_metadata(controller, record)
    if not meta.get("namespace"):  # a cluster-scoped one (a ClusterRole, a PriorityClass)
        meta.pop("namespace", None)
    return {"apiVersion": obj.api_version, "kind": obj.kind, "metadata": meta, **copy.deepcopy(dict(obj.content))}


def endpoints(record: ObjectRecord, registry: Registry) -> dict[str, Any]:
    obj: Service = record.obj  # type: ignore[assignment]
    key = ServiceKey(obj.metadata.namespace, obj.metadata.name)
    eps = registry.endpoints(key)
    info = registry.service(key)
    subsets = []
    if eps and info is not None:
        def address(ep):
            entry = {"ip": ep.address, "targetRef": {"kind": "Pod", "namespace": key.namespace, "name": ep.name},
                     "nodeName": ep.node or "meshd"}
            if ep.hostname:
                entry["hostname"] = ep.hostname
            return entry

        protocols = {p.name: p.protocol for p in obj.ports}
        for ports, members in port_groups(eps):
            subset: dict[str, Any] = {
                "ports": [{**({"name": n} if n else {}), "port": p, "protocol": protocols.get(n, "TCP")}
                          for n, p in ports],
            }
            ready = [address(ep) for ep in members if ep.ready]
            not_ready = [address(ep) for ep in members if not ep.ready]
            if ready:
                subset["addresses"] = ready
            if not_ready:
                subset["notReadyAddresses"] = not_ready
            subsets.append(subset)
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": _metadata({}, namespace=key.namespace, name=key.name, created=record.created, uid=record.uid)
        | {"labels": dict(obj.metadata.labels)},
        "subsets": subsets,
    }


__all__ = ["ReplicaSet", "deployment", "endpoints", "kube_list", "pod", "replicaset", "service"]
