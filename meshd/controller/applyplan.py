"""The first step of an apply: every object planned (created, configured or unchanged), with what the controller
carries over from the live object (replicas a scale set, a restart's annotation), the Service addresses and external
ports it is given, and every refusal raised before anything is written (ManifestError)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from meshd.controller.applychecks import (
    check_immutable,
    check_pod_name_free,
    check_replicaset_name_free,
    in_namespace,
)
from meshd.controller.clusterip import AddressPlan
from meshd.controller.persist import managed_fields_changed
from meshd.controller.records import keep_live_fields
from meshd.controller.services import assign_cluster_ip, claim_external_ports
from meshd.external.nodeports import PortClaims
from meshd.manifests import ManifestError, load_objects
from meshd.manifests.config import check_update as check_config_update
from meshd.model.objects import ConfigMap, Deployment, KubeObject, Pod, ReplicaSet, Secret, Service, StatefulSet, object_key
from meshd.model.security import object_refusals

if TYPE_CHECKING:
    from meshd.controller.loop import Controller


def apply_action(existing: KubeObject | None, obj: KubeObject) -> str:
    """created, unchanged (the same object, the same field managers) or configured. Pure."""
    if existing is None:
        return "created"
    if existing == obj and not managed_fields_changed(existing.raw, obj.raw):
        return "unchanged"
    return "configured"


def plan_apply(c: Controller, objects: Iterable[KubeObject], source: str, namespace: str | None,
               carry_live: bool) -> tuple[list[tuple[KubeObject, str]], AddressPlan | None]:
    """The objects as they will be written, each with its action, and the Service addresses they take."""
    planned: list[tuple[KubeObject, str]] = []
    port_claims: PortClaims | None = None  # the external ports Services hold, once a Service is applied
    addresses: AddressPlan | None = None  # the Service addresses the store holds, once a Service is applied
    for obj in (in_namespace(o, namespace, source) for o in objects):
        if object_key(obj) in c.terminating:  # marked for deletion: only its metadata changes (meshd.api.writes)
            raise ManifestError("the object is being deleted (metadata.deletionTimestamp is set): it cannot be "
                                "changed until it is gone", source=source, kind=obj.kind, name=obj.metadata.name)
        existing = c.objects.get(object_key(obj))
        if carry_live and existing is not None and isinstance(obj, (Deployment, ReplicaSet, StatefulSet)):
            carried = keep_live_fields(existing.obj.raw, obj.raw)
            if carried is not None:
                obj = in_namespace(load_objects([carried], source=source).objects[0], namespace, source)
        action = apply_action(existing.obj if existing is not None else None, obj)
        if isinstance(obj, Service):
            addresses = addresses or AddressPlan(c.store, c.addresses.pool, published={
                i.address: i.key for i in c.registry.services() if i.address})
            obj = assign_cluster_ip(c, obj, existing, addresses, source)
            if port_claims is None:
                port_claims = PortClaims((f"{k[1]}/{k[2]}", r.obj) for k, r in c.objects.items()
                                         if isinstance(r.obj, Service) and r.obj.type != "ClusterIP")
            obj = claim_external_ports(obj, existing, port_claims, source)
            action = action if existing is None or existing.obj != obj else "unchanged"
        planned.append((obj, action))
        for path, why in object_refusals(obj, c.security):  # what this agent will not run
            raise ManifestError(why, source=source, kind=obj.kind, name=obj.metadata.name, path=path)
        ns_name = (obj.metadata.namespace, obj.metadata.name)
        if isinstance(obj, Pod) and existing is None:
            running = c.managed.get(ns_name)
            check_pod_name_free(obj, running.identity if running is not None else None, source)
        if isinstance(obj, (ConfigMap, Secret)) and existing is not None:
            check_config_update(existing.obj, obj, source)
        if isinstance(obj, ReplicaSet) and existing is None:
            check_replicaset_name_free(obj, c.replicasets.get(ns_name), source)
        if existing is not None:
            check_immutable(existing.obj, obj, source)
    return planned, addresses


__all__ = ["apply_action", "plan_apply"]
