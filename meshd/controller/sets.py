"""The StatefulSet and DaemonSet controllers: each pass reads the pods a set owns, asks the pure plans
(meshd.controller.statefulset, meshd.controller.daemonset) what to do, and creates or stops pods through the
Controller's pod workers. The Controller calls in at a few hooks (reconcile, adoption, which pods are wanted).

Revisions: a revision is NAME-HASH of the pod template (the `controller-revision-hash` label, as Kubernetes'
ControllerRevision names). The templates of the revisions seen are kept in memory, so a pod below a partition is
recreated at the current revision; after an agent restart an unknown old revision's pod is recreated at the
update revision.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import defaultdict
from collections.abc import Mapping
from typing import Any
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from meshd.controller.daemonset import DaemonPod, DaemonSetCounts, daemonset_counts, plan_daemonset
from meshd.controller.pod import PodIdentity, PodWorker
from meshd.controller.records import ObjectRecord
from meshd.controller.statefulset import (
    POD_INDEX_LABEL,
    POD_NAME_LABEL,
    REVISION_LABEL,
    OrdinalPod,
    StatefulSetCounts,
    claim_name,
    ordinal_of,
    plan_statefulset,
    pod_name,
    statefulset_counts,
)
from meshd.driver.base import LABEL_OWNER, LABEL_OWNER_KIND, LABEL_TEMPLATE_HASH, ObservedContainer
from meshd.manifests import template_hash
from meshd.model.objects import DaemonSet, PersistentVolumeClaimVolumeSource, PodTemplate, StatefulSet

if TYPE_CHECKING:
    from meshd.controller.loop import Controller

log = logging.getLogger(__name__)

SET_KINDS = ("StatefulSet", "DaemonSet")
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def revision_name(name: str, template: PodTemplate) -> str:
    return f"{name}-{template_hash(template)}"


def claim_manifest(obj: StatefulSet, template: Mapping[str, Any], claim: str) -> dict[str, Any]:
    """The PersistentVolumeClaim of one pod from a volumeClaimTemplate: its spec, its labels and the set's
    selector labels (as Kubernetes labels them)."""
    meta = template.get("metadata") or {}
    labels = {**(meta.get("labels") or {}), **obj.selector.match_labels}
    metadata: dict[str, Any] = {"name": claim, "namespace": obj.metadata.namespace, "labels": labels}
    if meta.get("annotations"):
        metadata["annotations"] = dict(meta["annotations"])
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata,
            "spec": json.loads(json.dumps(template.get("spec") or {}))}


@dataclass
class SetState:
    """What the controller remembers of one set between passes."""

    templates: dict[str, PodTemplate] = field(default_factory=dict)  # revision -> its template
    current_revision: str = ""


class WorkloadSets:
    def __init__(self, controller: Controller) -> None:
        self.c = controller
        self.state: dict[tuple[str, str, str], SetState] = defaultdict(SetState)
        self._claiming: set[tuple[str, str]] = set()  # claims being created

    # --- the hooks ---------------------------------------------------------------------------------

    def reconcile(self, now: float) -> None:
        for record in list(self.c.objects.values()):
            if isinstance(record.obj, StatefulSet):
                self._reconcile_statefulset(record, now)
            elif isinstance(record.obj, DaemonSet):
                self._reconcile_daemonset(record, now)
        for key in [k for k in self.state if k not in self.c.objects and not self._pods(*k)]:
            del self.state[key]

    def wanted(self, identity: PodIdentity) -> bool:
        """A set's pod is wanted while its set exists (the set's plan removes the extra ones)."""
        return (identity.owner_kind, identity.namespace, identity.owner) in self.c.objects

    def adopt(self, namespace: str, pod: str, labels: Mapping[str, str], containers: list[ObservedContainer],
              created: float) -> bool:
        """Takes over a running pod of a set that exists (after an agent restart); False when it is not one."""
        kind, owner = labels.get(LABEL_OWNER_KIND, ""), labels.get(LABEL_OWNER, "")
        record = self.c.objects.get((kind, namespace, owner)) if kind in SET_KINDS else None
        if record is None:
            return False
        obj = record.obj
        assert isinstance(obj, (StatefulSet, DaemonSet))
        revision = labels.get(LABEL_TEMPLATE_HASH, "")
        state = self.state[(kind, namespace, owner)]
        if isinstance(obj, StatefulSet):
            ordinal = ordinal_of(owner, pod)
            if ordinal is None:
                return False
            if not state.current_revision or ordinal < obj.partition:
                state.current_revision = revision
        template = state.templates.get(revision, obj.template)
        self._start(record, pod, revision, template, created=created, adopt=containers)
        log.info("adopted pod %s/%s of %s %s", namespace, pod, kind, owner)
        return True

    # --- views for the API -------------------------------------------------------------------------

    def statefulset_counts(self, record: ObjectRecord) -> StatefulSetCounts:
        obj = record.obj
        assert isinstance(obj, StatefulSet)
        update = revision_name(obj.metadata.name, obj.template)
        state = self.state[("StatefulSet", obj.metadata.namespace, obj.metadata.name)]
        return statefulset_counts(replicas=obj.replicas, pods=self._ordinal_pods(obj, self.c.now()),
                                  current_revision=state.current_revision or update, update_revision=update)

    def daemonset_counts(self, record: ObjectRecord) -> DaemonSetCounts:
        obj = record.obj
        assert isinstance(obj, DaemonSet)
        return daemonset_counts(nodes=self.nodes(obj.template), pods=self._daemon_pods(obj, self.c.now()),
                                update_revision=revision_name(obj.metadata.name, obj.template))

    def nodes(self, template: PodTemplate | None = None) -> list[str]:
        """The nodes a DaemonSet runs on: this one, or in a cluster every Ready node that should run its pod."""
        if self.c.cluster is not None and template is not None:
            return self.c.cluster.daemon_nodes(template.spec)
        return [self.c.registry.node or "meshd"]

    # --- StatefulSet -------------------------------------------------------------------------------

    def _reconcile_statefulset(self, record: ObjectRecord, now: float) -> None:
        obj = record.obj
        assert isinstance(obj, StatefulSet)
        namespace, name = obj.metadata.namespace, obj.metadata.name
        state = self.state[("StatefulSet", namespace, name)]
        update = revision_name(name, obj.template)
        state.templates[update] = obj.template
        if not state.current_revision:
            state.current_revision = update
        pods = self._ordinal_pods(obj, now)
        plan = plan_statefulset(replicas=obj.replicas, pods=pods, parallel=obj.pod_management_policy == "Parallel",
                                on_delete=obj.update_strategy == "OnDelete", partition=obj.partition,
                                current_revision=state.current_revision, update_revision=update)
        workers = {ordinal_of(name, w.name): w for w in self._pods("StatefulSet", namespace, name)}
        for ordinal in plan.delete:
            worker = workers[ordinal]
            self.c.events.record("StatefulSet", namespace, name, "Normal", "SuccessfulDelete",
                                 f"delete Pod {worker.name} in StatefulSet {name} successful")
            self.c._terminate(worker, "scaled down" if ordinal >= obj.replicas else "updating to " + update)
        for ordinal, revision in plan.create:
            if not self._claims_ready(obj, ordinal, now):
                continue  # its claims are being created: the pod comes in a later pass
            template = state.templates.get(revision, obj.template)
            pod = pod_name(name, ordinal)
            self._start(record, pod, revision if revision in state.templates else update, template, created=now)
            self.c.events.record("StatefulSet", namespace, name, "Normal", "SuccessfulCreate",
                                 f"create Pod {pod} in StatefulSet {name} successful")
        counts = statefulset_counts(replicas=obj.replicas, pods=self._ordinal_pods(obj, now),
                                    current_revision=state.current_revision, update_revision=update)
        state.current_revision = counts.current_revision
        used = {w.identity.template_hash for w in workers.values()} | {state.current_revision, update}
        state.templates = {r: t for r, t in state.templates.items() if r in used}
        self._wake_when_available(workers.values(), obj.min_ready_seconds, now)

    def _claims_ready(self, obj: StatefulSet, ordinal: int, now: float) -> bool:
        """Whether the pod's claims (TEMPLATE-NAME-ORDINAL) exist; those missing are created (in the background,
        through the controller's apply, as a user's claim is). They are never deleted by the StatefulSet."""
        namespace, name = obj.metadata.namespace, obj.metadata.name
        ready = True
        for template in obj.volume_claim_templates:
            claim = claim_name(template["metadata"]["name"], name, ordinal)
            if ("PersistentVolumeClaim", namespace, claim) in self.c.objects:
                continue
            ready = False
            if (namespace, claim) not in self._claiming:
                self._claiming.add((namespace, claim))
                manifest = claim_manifest(obj, template, claim)
                self.c._tasks.spawn(self._create_claim(obj, manifest, now), name=f"claim {namespace}/{claim}")
        return ready

    async def _create_claim(self, obj: StatefulSet, manifest: dict[str, Any], now: float) -> None:
        namespace, name = obj.metadata.namespace, obj.metadata.name
        claim = manifest["metadata"]["name"]
        try:
            await self.c.apply(json.dumps(manifest), source=f"statefulset/{name}", namespace=namespace)
            self.c.events.record("StatefulSet", namespace, name, "Normal", "SuccessfulCreate",
                                 f"create Claim {claim} in StatefulSet {name} success")
        except Exception as error:  # noqa: BLE001 - told as an event; tried again a little later
            log.warning("could not create claim %s/%s of StatefulSet %s: %s", namespace, claim, name, error)
            self.c.events.record("StatefulSet", namespace, name, "Warning", "FailedCreate",
                                 f"create Claim {claim} in StatefulSet {name} failed error: {error}")
            self.c._call_at(self.c.now() + 5)
        finally:
            self._claiming.discard((namespace, claim))
            self.c.kick()

    def _ordinal_pods(self, obj: StatefulSet, now: float) -> list[OrdinalPod]:
        name = obj.metadata.name
        pods = []
        for worker in self._pods("StatefulSet", obj.metadata.namespace, name):
            ordinal = ordinal_of(name, worker.name)
            if ordinal is not None:
                pods.append(OrdinalPod(ordinal, worker.identity.template_hash, ready=worker.ready,
                                       available=worker.available(obj.min_ready_seconds, now),
                                       terminating=worker.terminating))
        return pods

    # --- DaemonSet ---------------------------------------------------------------------------------

    def _reconcile_daemonset(self, record: ObjectRecord, now: float) -> None:
        obj = record.obj
        assert isinstance(obj, DaemonSet)
        namespace, name = obj.metadata.namespace, obj.metadata.name
        update = revision_name(name, obj.template)
        self.state[("DaemonSet", namespace, name)].templates = {update: obj.template}
        plan = plan_daemonset(nodes=self.nodes(obj.template), pods=self._daemon_pods(obj, now), update_revision=update,
                              on_delete=obj.update_strategy == "OnDelete", max_unavailable=obj.max_unavailable,
                              max_surge=obj.max_surge)
        for pod in plan.delete:
            worker = self.c.managed[(namespace, pod)]
            self.c.events.record("DaemonSet", namespace, name, "Normal", "SuccessfulDelete", f"Deleted pod: {pod}")
            self.c._terminate(worker, "updating" if worker.identity.template_hash != update else "not needed")
        for node in plan.create:
            pod = self._free_name(namespace, name)
            self._start(record, pod, update, obj.template, created=now, node=node)
            self.c.events.record("DaemonSet", namespace, name, "Normal", "SuccessfulCreate", f"Created pod: {pod}")
        self._wake_when_available(self._pods("DaemonSet", namespace, name), obj.min_ready_seconds, now)

    def _daemon_pods(self, obj: DaemonSet, now: float) -> dict[str, list[DaemonPod]]:
        by_node: dict[str, list[DaemonPod]] = defaultdict(list)
        here = self.nodes()[0] if self.c.cluster is None else ""
        for w in self._pods("DaemonSet", obj.metadata.namespace, obj.metadata.name):
            by_node[here or getattr(w, "node", "")].append(  # one node: every pod is on it
                DaemonPod(w.name, w.identity.template_hash, w.created, available=w.available(obj.min_ready_seconds,
                                                                                             now),
                          ready=w.ready, terminating=w.terminating))
        return dict(by_node)

    def _free_name(self, namespace: str, name: str) -> str:
        while True:
            pod = f"{name}-" + "".join(self.c._rng.choice(_SUFFIX_ALPHABET) for _ in range(5))
            if (namespace, pod) not in self.c.managed:
                return pod

    # --- shared --------------------------------------------------------------------------------------

    def _pods(self, kind: str, namespace: str, name: str) -> list[PodWorker]:
        return [w for w in self.c.managed.values() if w.namespace == namespace and w.identity.owner_kind == kind
                and w.identity.owner == name]

    def _start(self, record: ObjectRecord, pod: str, revision: str, template: PodTemplate, *, created: float,
               adopt: list[ObservedContainer] | None = None, node: str = "") -> PodWorker:
        obj = record.obj
        assert isinstance(obj, (StatefulSet, DaemonSet))
        namespace, name = obj.metadata.namespace, obj.metadata.name
        labels = {**template.metadata.labels, REVISION_LABEL: revision}
        spec = template.spec
        if isinstance(obj, StatefulSet):
            ordinal = ordinal_of(name, pod)
            labels.update({POD_NAME_LABEL: pod, POD_INDEX_LABEL: str(ordinal)})
            claims = {t["metadata"]["name"]: claim_name(t["metadata"]["name"], name, ordinal or 0)
                      for t in obj.volume_claim_templates}
            volumes = tuple(dataclasses.replace(v, persistent_volume_claim=PersistentVolumeClaimVolumeSource(
                claims[v.name])) if v.name in claims else v for v in spec.volumes)
            spec = dataclasses.replace(spec, hostname=pod, subdomain=obj.service_name or None, volumes=volumes)
        else:
            labels[TEMPLATE_GENERATION_LABEL] = str(record.generation)
        identity = PodIdentity(namespace, pod, obj.kind, name, "", revision)
        return self.c._new_worker(identity, spec, labels, dict(template.metadata.annotations), created=created,
                                  adopt=adopt, node=node)

    def _wake_when_available(self, workers, min_ready: float, now: float) -> None:
        if min_ready <= 0:
            return
        due = [w.ready_since + min_ready for w in workers
               if w.ready_since is not None and w.ready_since + min_ready > now]
        if due:
            self.c._call_at(min(due))


__all__ = ["SET_KINDS", "WorkloadSets", "revision_name"]
