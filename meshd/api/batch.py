"""batch/v1 Job and CronJob, and v1 Namespace, as the API server shows them: spec with its defaults, status
(counts, times, conditions) from the Job and CronJob controllers (meshd.controller.batch)."""

from __future__ import annotations

import copy
from typing import Any

from meshd.api import cluster
from meshd.api.kube import rfc3339, stored_metadata
from meshd.controller.batch import INDEX_KEY, job_labels, job_selector
from meshd.controller.jobs import format_indexes
from meshd.controller.loop import Controller
from meshd.controller.namespaces import BUILTIN
from meshd.controller.records import ObjectRecord
from meshd.model.objects import CronJob, Job


def _condition(kind: str, reason: str, message: str, at: float | None) -> dict[str, Any]:
    return {"type": kind, "status": "True", "reason": reason, "message": message,
            "lastProbeTime": rfc3339(at), "lastTransitionTime": rfc3339(at)}


def job(controller: Controller, record: ObjectRecord) -> dict[str, Any]:
    obj: Job = record.obj  # type: ignore[assignment]
    batch = controller.batch
    meta = stored_metadata(controller, record)
    labels = job_labels(obj, record.uid)
    if not meta.get("labels"):  # as the API server defaults a Job's labels: its pod template's
        meta["labels"] = {**obj.template.metadata.labels, **labels}
    owner = batch.cron_owner(record)
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "CronJob", "name": owner.obj.metadata.name,
                                    "uid": owner.uid, "controller": True, "blockOwnerDeletion": True}]
    spec = copy.deepcopy(dict(obj.raw.get("spec") or {}))
    spec.update(parallelism=obj.parallelism, backoffLimit=obj.backoff_limit, completionMode=obj.completion_mode,
                suspend=obj.suspend, selector=job_selector(record.uid), manualSelector=False)
    if obj.completions is not None:
        spec["completions"] = obj.completions
    template = spec.setdefault("template", {})
    template_meta = template.setdefault("metadata", {})
    template_meta["labels"] = {**(template_meta.get("labels") or {}), **labels}
    counts = batch.counts(obj)
    runtime = batch.runtime(obj.metadata.namespace, obj.metadata.name)
    status: dict[str, Any] = {"active": counts.active, "succeeded": counts.succeeded, "failed": counts.failed,
                              "ready": counts.ready, "terminating": 0, "uncountedTerminatedPods": {}}
    if runtime.started is not None:
        status["startTime"] = rfc3339(runtime.started)
    condition = runtime.condition
    if condition is not None:
        if condition.type == "Complete":
            status["completionTime"] = rfc3339(condition.time)
            status["conditions"] = [
                _condition("SuccessCriteriaMet", condition.reason, condition.message, condition.time),
                _condition("Complete", condition.reason, condition.message, condition.time)]
        elif condition.type == "Failed":
            status["conditions"] = [
                _condition("FailureTarget", condition.reason, condition.message, condition.time),
                _condition("Failed", condition.reason, condition.message, condition.time)]
        else:
            status["conditions"] = [_condition("Suspended", condition.reason, condition.message, condition.time)]
    if obj.completion_mode == "Indexed" and counts.completed_indexes:
        status["completedIndexes"] = format_indexes(counts.completed_indexes)
    status = {k: v for k, v in status.items() if v != 0 or k in ("active", "succeeded", "failed")}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec, "status": status}


def cronjob(controller: Controller, record: ObjectRecord) -> dict[str, Any]:
    obj: CronJob = record.obj  # type: ignore[assignment]
    batch = controller.batch
    spec = copy.deepcopy(dict(obj.raw.get("spec") or {}))
    spec.update(concurrencyPolicy=obj.concurrency_policy, suspend=obj.suspend,
                successfulJobsHistoryLimit=obj.successful_jobs_history_limit,
                failedJobsHistoryLimit=obj.failed_jobs_history_limit)
    jobs = batch.cron_jobs(obj)
    active = [{"apiVersion": "batch/v1", "kind": "Job", "name": r.obj.metadata.name,
               "namespace": r.obj.metadata.namespace, "uid": r.uid}
              for r in jobs if batch.finished_at(r.obj) is None]  # type: ignore[arg-type]
    status: dict[str, Any] = {}
    if active:
        status["active"] = active
    last = batch.last_schedule(obj)
    if last is not None:
        status["lastScheduleTime"] = rfc3339(controller.cron_clock.wall_time(last))  # (the same but in tests)
    succeeded = [t for r in jobs if (t := _completed(controller, r)) is not None]
    if succeeded:
        status["lastSuccessfulTime"] = rfc3339(max(succeeded))
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": stored_metadata(controller, record),
            "spec": spec, "status": status}


def _completed(controller: Controller, record: ObjectRecord) -> float | None:
    runtime = controller.batch.runtime(record.obj.metadata.namespace, record.obj.metadata.name)
    condition = runtime.condition
    return condition.time if condition is not None and condition.type == "Complete" else None


def namespaces(controller: Controller, *, started: float) -> list[dict[str, Any]]:
    """The four namespaces every cluster has, those created, and any other that something lives in (kept from
    before namespaces were objects); one being deleted is Terminating."""
    created: dict[str, float | None] = {name: None for name in BUILTIN}
    for (kind, ns, name), record in controller.objects.items():
        if kind == "Namespace":
            created[name] = record.created
        elif ns and ns not in created:  # cluster-scoped objects have none
            created[ns] = record.created
    for ns, _ in controller.pods:
        created.setdefault(ns, None)
    items = []
    terminating = controller.batch.namespaces.terminating
    for name in sorted(created):
        item = cluster.namespace(name, created=created[name] or started)
        stored = controller.objects.get(("Namespace", "", name))
        if stored is not None:
            meta = stored_metadata(controller, stored)
            meta.pop("namespace", None)
            meta["labels"] = {**(meta.get("labels") or {}), "kubernetes.io/metadata.name": name}
            item["metadata"] = meta
        if name in terminating:
            item["metadata"]["deletionTimestamp"] = rfc3339(terminating[name])
            item["status"] = {"phase": "Terminating"}
        items.append(item)
    return items


def job_pod_owner(pod: dict[str, Any], controller: Controller) -> None:
    """A Job's pod names its Job as owner (what `kubectl describe` and garbage collectors read)."""
    labels = pod["metadata"].get("labels") or {}
    name = labels.get("batch.kubernetes.io/job-name")
    record = controller.objects.get(("Job", pod["metadata"]["namespace"], name or ""))
    if name and record is not None:
        pod["metadata"]["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                                               "uid": record.uid, "controller": True, "blockOwnerDeletion": True}]


__all__ = ["INDEX_KEY", "cronjob", "job", "job_pod_owner", "namespaces"]
