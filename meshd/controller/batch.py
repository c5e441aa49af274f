"""The Job and CronJob controllers, and namespace deletion, on top of the main controller (loop.py): each
reconcile pass asks the pure plans (jobs.py, cronjobs.py) what to do, creates and stops pods through the
controller's pod workers, and queues the writes to the store (Jobs a CronJob starts, Jobs whose history or TTL
ran out, namespaces whose content is gone), which `flush` carries out after the pass.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from meshd.controller.cronjobs import SCHEDULED_ANNOTATION, FinishedJob, job_name, plan_cronjob, plan_history
from meshd.controller.jobs import ACTIVE_PHASES, JobCondition, JobCounts, JobPod, count, plan_job
from meshd.controller.namespaces import Namespaces
from meshd.controller.pod import PodIdentity, PodWorker
from meshd.manifests import ManifestError, load_objects
from meshd.model.cron import load_zone, loaded_zone, parse_schedule
from meshd.model.objects import CronJob, EnvVar, Job, PodSpec

if TYPE_CHECKING:
    from meshd.controller.loop import Controller
    from meshd.controller.records import ObjectRecord

log = logging.getLogger(__name__)

INDEX_KEY = "batch.kubernetes.io/job-completion-index"
INDEX_ENV = "JOB_COMPLETION_INDEX"
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
SETTLE_SECONDS = 30.0  # how long an adopted pod may take to show what it is before its Job plans without it


@dataclass
class JobRuntime:
    """What the Job controller remembers of a Job beyond its pods."""

    started: float | None = None
    condition: JobCondition | None = None
    stopped_failed: int = 0  # active pods stopped when it failed: counted as failed, as Kubernetes counts them


@dataclass
class CronRuntime:
    last_schedule: datetime | None = None
    blocked: bool = False  # told that Forbid holds a scheduled time back (said once, not every pass)


@dataclass
class Writes:
    create: list[dict[str, Any]] = field(default_factory=list)
    delete: list[tuple[str, str, str]] = field(default_factory=list)


def job_labels(job: Job, uid: str) -> dict[str, str]:
    """The labels every pod of a Job carries (its selector is the controller-uid one)."""
    name = job.metadata.name
    return {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
            "controller-uid": uid, "job-name": name}


def job_selector(uid: str) -> dict[str, Any]:
    return {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}


def indexed_spec(spec: PodSpec) -> PodSpec:
    """An Indexed Job's pod spec: JOB_COMPLETION_INDEX from the pod's annotation in every container."""
    env = EnvVar(INDEX_ENV, field_path=f"metadata.annotations['{INDEX_KEY}']")
    containers = tuple(dataclasses.replace(c, env=(*[e for e in c.env if e.name != INDEX_ENV], env))
                       for c in spec.containers)
    return dataclasses.replace(spec, containers=containers)


def pod_index(job: Job, pod_name: str) -> int | None:
    """The completion index in an Indexed Job's pod name (JOB-INDEX-SUFFIX)."""
    if job.completion_mode != "Indexed":
        return None
    middle = pod_name.removeprefix(job.metadata.name + "-").rpartition("-")[0]
    return int(middle) if middle.isdigit() else None


class BatchControllers:
    def __init__(self, controller: Controller) -> None:
        self.c = controller
        self.jobs: dict[tuple[str, str], JobRuntime] = {}
        self.crons: dict[tuple[str, str], CronRuntime] = {}
        self.namespaces = Namespaces()
        self._writes = Writes()
        self._adopted: dict[tuple[str, str], float] = {}  # pods adopted after a restart, not yet seen as they are

    # --- views ------------------------------------------------------------------------------------

    def pods_of(self, namespace: str, name: str) -> list[PodWorker]:
        return [w for w in self.c.managed.values() if w.identity.owner_kind == "Job" and w.namespace == namespace
                and w.identity.owner == name and not w.terminating]

    def job_pods(self, job: Job) -> list[JobPod]:
        views = []
        for w in self.pods_of(job.metadata.namespace, job.metadata.name):
            finished = [c.finished_at for c in w.containers.values() if c.finished_at is not None]
            views.append(JobPod(name=w.name, phase=w.phase, created=w.created, index=pod_index(job, w.name),
                                restarts=w.restarts, ready=w.ready,
                                finished=max(finished) if finished and w.phase not in ACTIVE_PHASES else None))
        return views

    def counts(self, job: Job) -> JobCounts:
        counts = count(job, self.job_pods(job))
        runtime = self.jobs.get((job.metadata.namespace, job.metadata.name))
        if runtime is not None and runtime.stopped_failed:
            counts = dataclasses.replace(counts, failed=counts.failed + runtime.stopped_failed)
        return counts

    def runtime(self, namespace: str, name: str) -> JobRuntime:
        return self.jobs.get((namespace, name)) or JobRuntime()

    def cron_jobs(self, cron: CronJob) -> list[ObjectRecord]:
        """The Jobs a CronJob started: named after it and its scheduled minute, as it names them."""
        namespace, name = cron.metadata.namespace, cron.metadata.name
        owned = []
        for (kind, ns, job), record in self.c.objects.items():
            if kind != "Job" or ns != namespace or not job.startswith(name + "-"):
                continue
            scheduled = _scheduled(record)
            if scheduled is not None and job == job_name(name, scheduled):
                owned.append(record)
        return owned

    def cron_owner(self, record: ObjectRecord) -> ObjectRecord | None:
        """The CronJob that started a Job, if one did."""
        scheduled = _scheduled(record)
        if scheduled is None:
            return None
        owner = record.obj.metadata.name.rpartition("-")[0]
        cron = self.c.objects.get(("CronJob", record.obj.metadata.namespace, owner))
        return cron if cron is not None and job_name(owner, scheduled) == record.obj.metadata.name else None

    def last_schedule(self, cron: CronJob) -> datetime | None:
        runtime = self.crons.get((cron.metadata.namespace, cron.metadata.name))
        known = [t for t in (_scheduled(r) for r in self.cron_jobs(cron)) if t is not None]
        if runtime is not None and runtime.last_schedule is not None:
            known.append(runtime.last_schedule)
        return max(known, default=None)

    def finished_at(self, job: Job) -> float | None:
        runtime = self.jobs.get((job.metadata.namespace, job.metadata.name))
        return runtime.condition.time if runtime and runtime.condition and runtime.condition.terminal else None

    # --- reconciliation ---------------------------------------------------------------------------

    def pod_wanted(self, worker: PodWorker) -> bool:
        return ("Job", worker.namespace, worker.identity.owner) in self.c.objects

    def reconcile(self, now: float) -> None:
        for key in [k for k in self.jobs if ("Job", *k) not in self.c.objects]:
            del self.jobs[key]
        for key in [k for k in self.crons if ("CronJob", *k) not in self.c.objects]:
            del self.crons[key]
        self._adopted = {k: t for k, t in self._adopted.items() if k in self.c.pods}
        for record in list(self.c.objects.values()):
            if isinstance(record.obj, Job):
                self._reconcile_job(record, now)
            elif isinstance(record.obj, CronJob):
                self._reconcile_cron(record, now)
        due, later = self.namespaces.due(now)
        for namespace in due:
            contents = self._contents(namespace)
            self._writes.delete += contents
            if not contents and not any(ns == namespace for ns, _ in self.c.managed):
                self._writes.delete.append(("Namespace", "", namespace))
        if later is not None:
            self.c._call_at(later)

    def _reconcile_job(self, record: ObjectRecord, now: float) -> None:
        job: Job = record.obj  # type: ignore[assignment]
        namespace, name = job.metadata.namespace, job.metadata.name
        if self._settling(namespace, name, now):
            return  # an adopted pod does not know yet whether it runs or finished: plan once it does
        runtime = self.jobs.setdefault((namespace, name), self._recovered(job, record, now))
        pods = self.job_pods(job)
        plan = plan_job(job, pods, now=now, started=runtime.started, condition=runtime.condition,
                        backoff=self.c.backoff)
        if plan.condition is None and runtime.started is None or (
                runtime.condition is not None and runtime.condition.type == "Suspended" and plan.condition is None):
            runtime.started = now  # started, or resumed (activeDeadlineSeconds counts from here)
        if plan.condition != runtime.condition:
            self._transition(job, runtime, plan.condition, stopped=len(plan.stop))
        for pod in plan.stop:
            self.c._terminate(self.c.managed[(namespace, pod)], "job finished" if runtime.condition else "job scaled down")
        for index in plan.create:
            self._create_pod(job, record, index, now)
        if plan.wake_at is not None:
            self.c._call_at(plan.wake_at)
        finished = self.finished_at(job)
        if finished is not None and job.ttl_seconds_after_finished is not None:
            expires = finished + job.ttl_seconds_after_finished
            if now >= expires:
                self._writes.delete.append(("Job", namespace, name))
            else:
                self.c._call_at(expires)

    def _settling(self, namespace: str, name: str, now: float) -> bool:
        waiting = False
        for worker in self.pods_of(namespace, name):
            since = self._adopted.get((namespace, worker.name))
            if since is None:
                continue
            if worker.phase != "Pending" or now - since >= SETTLE_SECONDS:
                del self._adopted[(namespace, worker.name)]
            else:
                waiting = True
                self.c._call_at(since + SETTLE_SECONDS)
        return waiting

    def _recovered(self, job: Job, record: ObjectRecord, now: float) -> JobRuntime:
        """A Job's runtime on first sight (also after an agent restart: from its pods, which are adopted)."""
        pods = self.job_pods(job)
        started = min((p.created for p in pods), default=None)
        runtime = JobRuntime(started=started)
        plan = plan_job(job, pods, now=now, started=started, condition=None, backoff=self.c.backoff)
        if plan.condition is not None and plan.condition.terminal and pods:  # it finished while we were away
            last = max((p.finished or p.created) for p in pods)
            runtime.condition = dataclasses.replace(plan.condition, time=last)
        return runtime

    def _transition(self, job: Job, runtime: JobRuntime, condition: JobCondition | None, *, stopped: int) -> None:
        namespace, name = job.metadata.namespace, job.metadata.name
        runtime.condition = condition
        if condition is None:
            self.c.events.record("Job", namespace, name, "Normal", "Resumed", "Job resumed")
        elif condition.type == "Complete":
            self.c.events.record("Job", namespace, name, "Normal", "Completed", "Job completed")
        elif condition.type == "Failed":
            runtime.stopped_failed = stopped
            self.c.events.record("Job", namespace, name, "Warning", condition.reason, condition.message)
        else:
            self.c.events.record("Job", namespace, name, "Normal", "Suspended", "Job suspended")
        self.c._notify("Job", namespace, name)
        for cron in [self.cron_owner(r) for r in [self.c.objects[("Job", namespace, name)]]]:
            if cron is not None:
                self.c._notify("CronJob", namespace, cron.obj.metadata.name)

    def _create_pod(self, job: Job, record: ObjectRecord, index: int | None, now: float) -> None:
        namespace = job.metadata.namespace
        prefix = job.metadata.name if index is None else f"{job.metadata.name}-{index}"
        while True:
            pod = f"{prefix}-{''.join(self.c._rng.choice(_SUFFIX_ALPHABET) for _ in range(5))}"
            if (namespace, pod) not in self.c.managed:
                break
        labels, annotations, spec = self._pod_template(job, record, index)
        identity = PodIdentity(namespace, pod, "Job", job.metadata.name)
        self.c._new_worker(identity, spec, labels, annotations, created=now)
        self.c.events.record("Job", namespace, job.metadata.name, "Normal", "SuccessfulCreate", f"Created pod: {pod}")

    def _pod_template(self, job: Job, record: ObjectRecord, index: int | None
                      ) -> tuple[dict[str, str], dict[str, str], PodSpec]:
        labels = {**job.template.metadata.labels, **job_labels(job, record.uid)}
        annotations = dict(job.template.metadata.annotations)
        spec = job.template.spec
        if index is not None:
            labels[INDEX_KEY] = annotations[INDEX_KEY] = str(index)
            spec = indexed_spec(spec)
            hostname = f"{job.metadata.name}-{index}"  # as Kubernetes names an Indexed Job's pod's host
            if spec.hostname is None and len(hostname) <= 63:
                spec = dataclasses.replace(spec, hostname=hostname)
        return labels, annotations, spec

    def adopt(self, namespace: str, pod: str, owner: str, **kwargs: Any) -> bool:
        """Takes over a Job's pod found running (or finished) after an agent restart."""
        record = self.c.objects.get(("Job", namespace, owner))
        if record is None:
            return False
        job: Job = record.obj  # type: ignore[assignment]
        labels, annotations, spec = self._pod_template(job, record, pod_index(job, pod))
        self.c._new_worker(PodIdentity(namespace, pod, "Job", owner), spec, labels, annotations, **kwargs)
        self._adopted[(namespace, pod)] = self.c.now()
        return True

    def _reconcile_cron(self, record: ObjectRecord, now: float) -> None:
        cron: CronJob = record.obj  # type: ignore[assignment]
        namespace, name = cron.metadata.namespace, cron.metadata.name
        runtime = self.crons.setdefault((namespace, name), CronRuntime())
        jobs = self.cron_jobs(cron)
        active = [r.obj.metadata.name for r in jobs if self.finished_at(r.obj) is None]  # type: ignore[arg-type]
        zone = loaded_zone(cron.time_zone)
        if zone is None:  # its time zone is read from disk once, off the loop
            self.c._tasks.spawn(self._load_zone(cron.time_zone or "UTC"), name=f"time zone {cron.time_zone}")
            return
        clock = self.c.cron_clock  # the schedule's clock: the wall clock, or a fast one in tests (cronclock.py)
        plan = plan_cronjob(name=name, schedule=parse_schedule(cron.schedule, zone), now=clock.schedule_time(now),
                            created=clock.schedule_time(record.created), last_schedule=self.last_schedule(cron),
                            suspend=cron.suspend, concurrency=cron.concurrency_policy,
                            starting_deadline=cron.starting_deadline_seconds, active=active,
                            existing=[r.obj.metadata.name for r in jobs])
        if plan.event is not None and not runtime.blocked:
            self.c.events.record("CronJob", namespace, name, *plan.event)
        runtime.blocked = plan.event is not None
        for stop in plan.stop:
            self._writes.delete.append(("Job", namespace, stop))
            self.c.events.record("CronJob", namespace, name, "Normal", "SuccessfulDelete", f"Deleted job {stop}")
        if plan.run_at is not None:
            runtime.last_schedule = plan.run_at
            self._writes.create.append(self._job_manifest(cron, plan.run_at))
            self.c.events.record("CronJob", namespace, name, "Normal", "SuccessfulCreate",
                                 f"Created job {job_name(name, plan.run_at)}")
            self.c._notify("CronJob", namespace, name)
        if plan.wake_at is not None:
            self.c._call_at(clock.wall_time(plan.wake_at))
        finished = [FinishedJob(r.obj.metadata.name, r.obj.metadata.name in self._succeeded(jobs), at)
                    for r in jobs if (at := self.finished_at(r.obj)) is not None]  # type: ignore[arg-type]
        for drop in plan_history(finished, successful_limit=cron.successful_jobs_history_limit,
                                 failed_limit=cron.failed_jobs_history_limit):
            self._writes.delete.append(("Job", namespace, drop))

    async def _load_zone(self, name: str) -> None:
        await asyncio.to_thread(load_zone, name)
        self.c.kick()

    def _succeeded(self, jobs: list[ObjectRecord]) -> set[str]:
        done = set()
        for record in jobs:
            runtime = self.jobs.get((record.obj.metadata.namespace, record.obj.metadata.name))
            if runtime is not None and runtime.condition is not None and runtime.condition.type == "Complete":
                done.add(record.obj.metadata.name)
        return done

    def _job_manifest(self, cron: CronJob, scheduled: datetime) -> dict[str, Any]:
        template = copy.deepcopy(dict(cron.job_template))
        meta = dict(template.get("metadata") or {})
        annotations = {**(meta.get("annotations") or {}),
                       SCHEDULED_ANNOTATION: scheduled.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        metadata = {"name": job_name(cron.metadata.name, scheduled), "namespace": cron.metadata.namespace,
                    "annotations": annotations}
        if meta.get("labels"):
            metadata["labels"] = meta["labels"]
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": template.get("spec") or {}}

    def _contents(self, namespace: str) -> list[tuple[str, str, str]]:
        # (a Terminating object a finalizer holds too: the namespace waits for it, as Kubernetes' does)
        return [k for k in (*self.c.objects, *self.c.terminating) if k[1] == namespace and k[0] != "Namespace"]

    def on_delete(self, keys: list[tuple[str, str, str]], now: float
                  ) -> tuple[list[tuple[str, str, str]], set[tuple[str, str, str]]]:
        """What else goes with `keys`: a CronJob's Jobs (as the garbage collector deletes what it owns); and the
        namespaces kept until their content is gone (the next passes delete it)."""
        held = self.namespaces.on_delete(keys, contents=self._contents, now=now)
        extra: list[tuple[str, str, str]] = []
        for key in keys:
            record = self.c.objects.get(key) if key[0] == "CronJob" else None
            if record is not None:
                extra += [("Job", key[1], r.obj.metadata.name) for r in self.cron_jobs(record.obj)]  # type: ignore[arg-type]
        return extra, held

    # --- the writes of a pass ---------------------------------------------------------------------

    async def flush(self) -> None:
        """Carries out the store writes the last pass queued (each batch in one transaction)."""
        writes, self._writes = self._writes, Writes()
        if writes.delete:
            await self.c.delete_many(list(dict.fromkeys(writes.delete)))
        for key in writes.delete:
            if key[0] == "Namespace" and key not in self.c.objects:
                self.namespaces.forget(key[2])
                await self.c.events.forget_namespace(key[2])
        for manifest in writes.create:
            try:
                (obj,) = load_objects([manifest], source="cronjob").objects
                async with self.c._write_lock:
                    await self.c._apply([obj], "cronjob", None)
            except (ManifestError, ValueError) as error:
                log.error("could not create job %s: %s", manifest["metadata"]["name"], error)


def _scheduled(record: ObjectRecord) -> datetime | None:
    text = record.obj.metadata.annotations.get(SCHEDULED_ANNOTATION)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


__all__ = ["INDEX_ENV", "INDEX_KEY", "BatchControllers", "JobRuntime", "job_labels", "job_selector"]
