"""The CronJob controller's decisions as pure functions, the clock passed in: whether a scheduled time is due
and what to do about the Jobs still running (concurrencyPolicy), and which finished Jobs the history limits
drop. Kubernetes' pkg/controller/cronjob (cronjob_controllerv2.go, utils.go) is the model: the most recent
unmet schedule time runs (older missed ones do not), a Job is named after its scheduled minute, so one time
never runs twice, and startingDeadlineSeconds drops a time that is too late to start.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from meshd.model.cron import Schedule

SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"


@dataclass(frozen=True)
class CronPlan:
    run_at: datetime | None = None  # the scheduled time to create a Job for now
    stop: tuple[str, ...] = ()  # active Jobs to delete first (Replace)
    wake_at: datetime | None = None  # the next time the plan can change by the clock alone
    event: tuple[str, str, str] | None = None  # (type, reason, message) worth recording


def job_name(cronjob: str, scheduled: datetime) -> str:
    """A scheduled Job's name: the CronJob's and the scheduled time in minutes since the epoch."""
    return f"{cronjob}-{int(scheduled.timestamp()) // 60}"


def plan_cronjob(*, name: str, schedule: Schedule, now: datetime, created: datetime, last_schedule: datetime | None,
                 suspend: bool, concurrency: str, starting_deadline: int | None, active: Sequence[str],
                 existing: Collection[str]) -> CronPlan:
    """What a CronJob does at `now`; `active` are its unfinished Jobs, `existing` the names of all its Jobs."""
    upcoming = next(schedule.after(now))
    if suspend:
        return CronPlan()
    earliest = last_schedule or created
    if starting_deadline is not None:
        earliest = max(earliest, now - timedelta(seconds=starting_deadline))
    latest = schedule.latest(now)
    if latest <= earliest:
        return CronPlan(wake_at=upcoming)
    if job_name(name, latest) in existing:
        return CronPlan(wake_at=upcoming)
    if active and concurrency == "Forbid":
        return CronPlan(wake_at=upcoming, event=(
            "Normal", "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid"))
    stop = tuple(active) if concurrency == "Replace" else ()
    return CronPlan(run_at=latest, stop=stop, wake_at=upcoming)


@dataclass(frozen=True)
class FinishedJob:
    name: str
    succeeded: bool
    finished: float


def plan_history(finished: Sequence[FinishedJob], *, successful_limit: int, failed_limit: int) -> tuple[str, ...]:
    """The finished Jobs to delete: the oldest beyond each history limit."""
    drop: list[str] = []
    for succeeded, limit in ((True, successful_limit), (False, failed_limit)):
        jobs = sorted((j for j in finished if j.succeeded == succeeded), key=lambda j: j.finished, reverse=True)
        drop += [j.name for j in jobs[limit:]]
    return tuple(drop)


__all__ = ["SCHEDULED_ANNOTATION", "CronPlan", "FinishedJob", "job_name", "plan_cronjob", "plan_history"]
