"""The controller following the shared store: what another agent writes (a Deployment applied through its API,
a ReplicaSet its controllers made, a deletion) becomes this agent's records too, and every change wakes this
agent's API watches. This agent's own writes come back the same way and change nothing (their records already
match). Owned ReplicaSets are taken from the store only while this agent does not lead (the leader is their
one writer)."""

from __future__ import annotations

import logging

from meshd.cluster.binding import owned_pod
from meshd.controller import terminating
from meshd.controller.loop import Controller
from meshd.controller.persist import load_records
from meshd.controller.records import ObjectRecord, ReplicaSetRecord
from meshd.manifests.hashing import template_hash
from meshd.controller.rsstore import signature
from meshd.controller.services import publish_service
from meshd.manifests.loader import API_VERSIONS
from meshd.model.objects import Deployment, ReplicaSet, Service
from meshd.store import Event, Expired, object_key

log = logging.getLogger(__name__)


def apply_event(controller: Controller, event: Event) -> bool:
    """Brings the controller's records in line with one store event; whether anything changed."""
    key = object_key(event.object)
    kind, namespace, name = key
    if kind not in API_VERSIONS or owned_pod(event.object):  # a controller's Pod: meshd.cluster.pods follows it
        return False
    marked = terminating.observed(controller, event.object, deleted=event.type == "DELETED")
    if marked and event.type != "DELETED":  # held Terminating (meshd.controller.terminating)
        return True
    if event.type == "DELETED":
        changed = marked or key in controller.objects
        if changed:
            controller._forget(key)
        # a ReplicaSet's record goes too where this agent does not lead (the leader's reconcile would drop a
        # standalone one's; nothing else does here, and a delete through this agent would wait for it forever)
        if kind == "ReplicaSet" and not controller.leading and (namespace, name) in controller.replicasets:
            del controller.replicasets[(namespace, name)]
            controller._persisted_rs.pop((namespace, name), None)
            changed = True
        return changed
    loaded = load_records([event.object], where="the shared store")
    for record in loaded.objects:
        existing = controller.objects.get(key)
        if isinstance(record.obj, ReplicaSet) and not controller.leading and key[1:] not in controller.replicasets:
            controller.replicasets[key[1:]] = bare_replicaset(record, None)  # (one this agent applied comes back)
        if existing is not None and existing.obj == record.obj and existing.generation == record.generation:
            return False
        if existing is not None:
            record.created = existing.created
        controller.objects[key] = record
        if isinstance(record.obj, Service):
            publish_service(controller, record.obj)
        if isinstance(record.obj, (Deployment, ReplicaSet)):
            controller.progress.pop(key[1:], None)
        if isinstance(record.obj, ReplicaSet) and not controller.leading:  # served (and deleted) through this agent
            controller.replicasets[key[1:]] = bare_replicaset(record, controller.replicasets.get(key[1:]))
        return True
    for rs in loaded.replicasets:
        if controller.leading:
            return False
        controller.replicasets[(rs.namespace, rs.name)] = rs
        owner = controller.objects.get(("Deployment", rs.namespace, rs.owner))
        controller._persisted_rs[(rs.namespace, rs.name)] = signature(rs, owner.uid if owner else "")
        return True
    return False


def bare_replicaset(record: ObjectRecord, current: ReplicaSetRecord | None) -> ReplicaSetRecord:
    """A bare ReplicaSet's record where this agent does not lead (the leader's reconcile makes its own)."""
    rs: ReplicaSet = record.obj  # type: ignore[assignment]
    return ReplicaSetRecord(rs, "ReplicaSet", rs.metadata.name, template_hash(rs.template), 1, rs.replicas,
                            current.created if current is not None else record.created, record.uid)


def stop_unwanted(controller: Controller) -> None:
    """An agent that does not lead still stops the pods it runs whose object (or owner) another agent deleted:
    the leader cannot, they are this node's. (With Pod objects in the store, the kubelet does: meshd.cluster.kubelet.)"""
    if controller.leading or controller.kubelet is not None:
        return
    for worker in list(controller.pods.values()):
        if not worker.terminating and not controller._pod_wanted(worker):
            controller._terminate(worker, "deleted through another agent")


async def follow_store(controller: Controller) -> None:
    """Runs for the agent's life (supervised): every store event into the controller, then its watchers."""
    store = controller.store
    since: int | None = store.resource_version
    while True:
        try:
            async for event in store.watch(from_resource_version=since):
                since = event.resource_version
                if controller.cluster is not None and event.object.get("kind") == "Pod":
                    controller.cluster.observe(event)
                if apply_event(controller, event):
                    stop_unwanted(controller)
                    controller.kick()
                controller._notify(*object_key(event.object))
        except Expired:
            log.warning("the controller fell behind the shared store; reading every object again")
            since = None  # a watch without a version starts with every object (ADDED), which apply_event merges
            for key in [k for k in controller.objects if store.get(*k) is None]:  # and what went meanwhile
                controller._forget(key)
            if controller.cluster is not None:
                controller.cluster.load()
            controller.kick()
