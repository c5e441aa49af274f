"""A Deployment's rollout, one reconcile pass of it: its ReplicaSet of the current template (made when missing,
revision bumped on a rollback), the replica counts the pure plan (meshd.controller.plan.plan_rollout) gives each
ReplicaSet, its progress against progressDeadlineSeconds (kept in the store: meshd.controller.progress), and its
history pruned to revisionHistoryLimit. Runs inside the controller's serial reconcile pass (meshd.controller.loop)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from meshd.controller.plan import plan_rollout, rollout_complete
from meshd.controller.progress import Progress, restored
from meshd.controller.records import (
    ObjectRecord,
    ReplicaSetRecord,
    owned_replicaset_manifest,
    with_change_cause,
)
from meshd.controller.views import replicaset_view
from meshd.manifests import ManifestError, load_objects
from meshd.model.objects import Deployment, ReplicaSet

if TYPE_CHECKING:
    from meshd.controller.loop import Controller


def reconcile_deployment(c: Controller, record: ObjectRecord, now: float) -> None:
    deployment: Deployment = record.obj  # type: ignore[assignment]
    namespace, name = deployment.metadata.namespace, deployment.metadata.name
    hash_ = record.template_hash()
    owned = c._owned_replicasets(namespace, name)
    new = next((r for r in owned if r.template_hash == hash_), None)
    top_revision = max((r.revision for r in owned), default=0)
    if new is None and deployment.paused and owned:  # as Kubernetes: no new ReplicaSet until resumed
        return
    if new is None:
        manifest = owned_replicaset_manifest(deployment, hash_, top_revision + 1)
        created = _load_replicaset(manifest, source=f"replicaset of {name}")
        new = ReplicaSetRecord(created, "Deployment", name, hash_, top_revision + 1, 0, now)
        c.replicasets[(namespace, created.metadata.name)] = new
        c.events.record("Deployment", namespace, name, "Normal", "ScalingReplicaSet",
                        f"Created new replica set {created.metadata.name}")
        c._dirty = True
    elif new.revision < top_revision:  # a rollback makes an old template current again
        new.revision = top_revision + 1
        c._dirty = True
    old = [r for r in owned if r is not new]
    current = with_change_cause(new.rs, deployment)
    if current is not new.rs:
        new.rs = current
        c._dirty = True
    if new.rs.min_ready_seconds != deployment.min_ready_seconds:
        new.rs = dataclasses.replace(new.rs, min_ready_seconds=deployment.min_ready_seconds)
    views = {r.name: replicaset_view(r, c._pods_of(r), now) for r in (new, *old)}
    if not deployment.paused:
        changes = plan_rollout(
            replicas=deployment.replicas,
            strategy=deployment.strategy,
            max_surge=deployment.rolling_update.max_surge,
            max_unavailable=deployment.rolling_update.max_unavailable,
            new=views[new.name],
            old=[views[r.name] for r in old],
        )
        for rs_name, count in changes.items():
            scaled = c.replicasets[(namespace, rs_name)]
            verb = "up" if count > scaled.replicas else "down"
            c.events.record("Deployment", namespace, name, "Normal", "ScalingReplicaSet",
                            f"Scaled {verb} replica set {rs_name} from {scaled.replicas} to {count}")
            scaled.replicas = count
            c._dirty = True
    track_progress(c, deployment, new, old, now)
    prune_history(c, deployment, new, old)


def track_progress(c: Controller, deployment: Deployment, new: ReplicaSetRecord, old: list[ReplicaSetRecord],
                   now: float) -> None:
    key = (deployment.metadata.namespace, deployment.metadata.name)
    views = [replicaset_view(r, c._pods_of(r), now) for r in (new, *old)]
    snapshot = tuple((v.name, v.replicas, v.pods, v.available) for v in views)
    progress = c.progress.get(key)
    if progress is None:  # taken up from the stored status (a new leader, a restart), else from now
        progress = c.progress[key] = restored(c.store.get("Deployment", *key), snapshot=snapshot,
                                              now=now) or Progress(last_progress=now, snapshot=snapshot)
    complete = rollout_complete(replicas=deployment.replicas, new=views[0], old=views[1:])
    if snapshot != progress.snapshot:
        progress.snapshot = snapshot
        progress.last_progress = now
        progress.failed = False
    if complete and progress.announced != new.name:  # once per rollout (not again when pods come back after a
        progress.announced = new.name  # restart, a crash or a scale)
        c.events.record("Deployment", *key, "Normal", "NewReplicaSetAvailable",
                        f'ReplicaSet "{new.name}" has successfully progressed.')
    progress.complete = complete
    deadline = progress.last_progress + deployment.progress_deadline_seconds
    if not complete and not progress.failed:
        if now >= deadline:
            progress.failed = True
            progress.message = f'ReplicaSet "{new.name}" has timed out progressing.'
            c.events.record("Deployment", *key, "Warning", "ProgressDeadlineExceeded", progress.message)
            c._notify("Deployment", *key)
        else:
            c._call_at(deadline)
    record = c.objects.get(("Deployment", *key))
    if record is not None:
        c.progress_writer.save(key, progress, record.generation, new.name, deployment.progress_deadline_seconds)
    becoming_available = [p.ready_since + new.rs.min_ready_seconds for p in c._pods_of(new)
                          if p.ready_since is not None and p.ready_since + new.rs.min_ready_seconds > now]
    if becoming_available:
        c._call_at(min(becoming_available))


def prune_history(c: Controller, deployment: Deployment, new: ReplicaSetRecord, old: list[ReplicaSetRecord]) -> None:
    idle = sorted((r for r in old if r.replicas == 0 and not c._pods_of(r)), key=lambda r: r.revision)
    for record in idle[: max(len(idle) - deployment.revision_history_limit, 0)]:
        del c.replicasets[(record.namespace, record.name)]
        c._dirty = True


def _load_replicaset(manifest: dict[str, Any], *, source: str) -> ReplicaSet:
    (obj,) = load_objects([manifest], source=source).objects
    if not isinstance(obj, ReplicaSet):
        raise ManifestError(f"expected a ReplicaSet, found a {obj.kind}", source=source)
    return obj


def undo_target(owned: list[ReplicaSetRecord], to_revision: int | None, name: str) -> ReplicaSetRecord:
    """The ReplicaSet `kubectl rollout undo` goes back to: `to_revision`, or the newest before the current one.
    KeyError: the Deployment owns none; ValueError: no such revision, or no older one. Pure."""
    owned = sorted(owned, key=lambda r: r.revision)
    if not owned:
        raise KeyError(f'deployments "{name}" not found')
    if to_revision:
        target = next((r for r in owned if r.revision == to_revision), None)
        if target is None:
            raise ValueError(f"unable to find specified revision {to_revision} in history")
        return target
    older = [r for r in owned if r.revision < owned[-1].revision]
    if not older:
        raise ValueError("no rollout history found for deployment " + name)
    return older[-1]


__all__ = ["prune_history", "reconcile_deployment", "track_progress", "undo_target"]
