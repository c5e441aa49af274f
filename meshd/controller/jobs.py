"""The Job controller's decision as a pure function: which pods to create (and with which completion index),
which to stop, and whether the Job has completed or failed (backoffLimit, activeDeadlineSeconds).

Kubernetes' pkg/controller/job/job_controller.go is the model: a pod that exits 0 is a completion; with
restartPolicy Never a failed pod counts as a failure and is replaced after a backoff, with OnFailure its
container restarts count instead; finished pods are kept until the Job goes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshd.controller.backoff import BackoffPolicy
from meshd.model.objects import Job

ACTIVE_PHASES = ("Pending", "Running")
MESSAGES = {
    "BackoffLimitExceeded": "Job has reached the specified backoff limit",
    "DeadlineExceeded": "Job was active longer than specified deadline",
    "CompletionsReached": "Reached expected number of succeeded pods",
    "JobSuspended": "Job suspended",
}


@dataclass(frozen=True)
class JobPod:
    """What the Job controller needs to know of one of its pods (not terminating)."""

    name: str
    phase: str  # Pending | Running | Succeeded | Failed
    created: float
    index: int | None = None  # its completion index (Indexed Jobs)
    restarts: int = 0
    ready: bool = False
    finished: float | None = None  # when it succeeded or failed


@dataclass(frozen=True)
class JobCondition:
    type: str  # Complete | Failed | Suspended
    reason: str
    time: float

    @property
    def message(self) -> str:
        return MESSAGES.get(self.reason, "")

    @property
    def terminal(self) -> bool:
        return self.type in ("Complete", "Failed")


@dataclass(frozen=True)
class JobCounts:
    active: int
    succeeded: int
    failed: int
    ready: int
    completed_indexes: tuple[int, ...] = ()


@dataclass(frozen=True)
class JobPlan:
    create: tuple[int | None, ...] = ()  # one entry per pod to create: its completion index, or None
    stop: tuple[str, ...] = ()  # active pods to stop
    condition: JobCondition | None = None  # the Job's state after this step (None: running)
    wake_at: float | None = None  # when the plan may change with nothing else happening (deadline, backoff)


def count(job: Job, pods: Sequence[JobPod]) -> JobCounts:
    active = [p for p in pods if p.phase in ACTIVE_PHASES]
    succeeded = [p for p in pods if p.phase == "Succeeded"]
    failed = sum(1 for p in pods if p.phase == "Failed")
    if job.completion_mode == "Indexed":
        indexes = tuple(sorted({p.index for p in succeeded if p.index is not None
                                and 0 <= p.index < (job.completions or 0)}))
        return JobCounts(len(active), len(indexes), failed, sum(1 for p in active if p.ready), indexes)
    return JobCounts(len(active), len(succeeded), failed, sum(1 for p in active if p.ready))


def plan_job(job: Job, pods: Sequence[JobPod], *, now: float, started: float | None,
             condition: JobCondition | None, backoff: BackoffPolicy) -> JobPlan:
    """The next step of a Job whose pods are `pods`, started at `started` (None: not yet), in `condition`."""
    active = sorted((p for p in pods if p.phase in ACTIVE_PHASES), key=lambda p: p.created)
    stop_all = tuple(p.name for p in active)
    if condition is not None and condition.terminal:
        return JobPlan(stop=stop_all, condition=condition)
    if job.suspend:
        keep = condition if condition is not None and condition.type == "Suspended" else \
            JobCondition("Suspended", "JobSuspended", now)
        return JobPlan(stop=stop_all, condition=keep)
    counts = count(job, pods)
    start = started if started is not None else now
    if job.active_deadline_seconds is not None:
        deadline = start + job.active_deadline_seconds
        if now >= deadline:
            return JobPlan(stop=stop_all, condition=JobCondition("Failed", "DeadlineExceeded", now))
    else:
        deadline = None
    if _past_backoff_limit(job, counts.failed, sum(p.restarts for p in active)):
        return JobPlan(stop=stop_all, condition=JobCondition("Failed", "BackoffLimitExceeded", now))
    if _complete(job, counts):
        return JobPlan(stop=stop_all, condition=JobCondition("Complete", "CompletionsReached", now))
    wanted = _wanted(job, counts, active)
    create: tuple[int | None, ...]
    if job.completion_mode == "Indexed":
        stop = tuple(p.name for p in active if p.index not in wanted)
        create = tuple(i for i in wanted if i not in {p.index for p in active})
    else:  # fewer wanted (parallelism lowered): the newest go
        stop = tuple(p.name for p in sorted(active, key=lambda p: -p.created)[:max(len(active) - len(wanted), 0)])
        create = (None,) * max(len(wanted) - len(active), 0)
    wake = [deadline] if deadline is not None else []
    if create and counts.failed:
        last_failure = max((p.finished or p.created) for p in pods if p.phase == "Failed")
        allowed = last_failure + min(backoff.initial * 2 ** (counts.failed - 1), backoff.maximum)
        if now < allowed:  # a failed pod is replaced after a backoff, as the Job controller does
            create = ()
            wake.append(allowed)
    return JobPlan(create=create, stop=stop, wake_at=min(wake) if wake else None)


def _past_backoff_limit(job: Job, failed: int, restarts: int) -> bool:
    if failed > job.backoff_limit:
        return True
    if job.template.spec.restart_policy != "OnFailure":
        return False
    # with OnFailure the kubelet restarts the container: its restarts count towards the limit
    return restarts > 0 if job.backoff_limit == 0 else failed + restarts >= job.backoff_limit


def _complete(job: Job, counts: JobCounts) -> bool:
    if job.completions is None:  # a work queue: done once one pod succeeded and none runs
        return counts.succeeded > 0 and counts.active == 0
    return counts.succeeded >= job.completions


def _wanted(job: Job, counts: JobCounts, active: Sequence[JobPod]) -> list[int | None]:
    """The active pods the Job wants now: their indexes (Indexed), else as many Nones."""
    if job.completion_mode == "Indexed":
        assert job.completions is not None
        running = [p.index for p in active if p.index is not None]
        done = set(counts.completed_indexes)
        keep = [i for i in running if i not in done][: job.parallelism]
        pending = [i for i in range(job.completions) if i not in done and i not in running]
        return [*keep, *pending[: max(job.parallelism - len(keep), 0)]]
    if job.completions is None:
        want = len(active) if counts.succeeded else job.parallelism
    else:
        want = min(job.parallelism, job.completions - counts.succeeded)
    return [None] * max(min(want, job.parallelism), 0)


def format_indexes(indexes: Sequence[int]) -> str:
    """status.completedIndexes as Kubernetes writes it: three or more in a row as a range ("1,3-5,7,8")."""
    runs: list[list[int]] = []
    for i in sorted(set(indexes)):
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(str(a) if a == b else f"{a},{b}" if b == a + 1 else f"{a}-{b}" for a, b in runs)


__all__ = ["JobCondition", "JobCounts", "JobPlan", "JobPod", "count", "format_indexes", "plan_job"]
