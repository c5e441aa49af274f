"""The Job and CronJob controllers' decisions, table-tested with an injected clock: which pods a Job creates
and stops, when it completes or fails, when a CronJob runs and what its history limits drop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meshd.controller.backoff import BackoffPolicy
from meshd.controller.cronjobs import FinishedJob, job_name, plan_cronjob, plan_history
from meshd.controller.jobs import JobCondition, JobPod, count, format_indexes, plan_job
from meshd.manifests import load_documents
from meshd.model.cron import CronError, load_zone, parse_schedule
from meshd.model.objects import Job

BACKOFF = BackoffPolicy(initial=10, maximum=360)


def make_job(*, completions: int | None = 1, parallelism: int = 1, backoff: int = 6, deadline: int | None = None,
             mode: str = "NonIndexed", restart: str = "Never", suspend: bool = False) -> Job:
    spec = [f"parallelism: {parallelism}", f"backoffLimit: {backoff}", f"completionMode: {mode}",
            f"suspend: {str(suspend).lower()}"]
    if completions is not None:
        spec.append(f"completions: {completions}")
    if deadline is not None:
        spec.append(f"activeDeadlineSeconds: {deadline}")
    text = ("apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n" + "".join(f"  {s}\n" for s in spec)
            + f"  template:\n    spec:\n      restartPolicy: {restart}\n"
            "      containers: [{name: c, image: busybox}]\n")
    (job,) = load_documents(text).objects
    assert isinstance(job, Job)
    return job


def pod(name: str, phase: str, created: float = 0, *, index: int | None = None, restarts: int = 0,
        finished: float | None = None) -> JobPod:
    return JobPod(name=name, phase=phase, created=created, index=index, restarts=restarts, finished=finished)


def plan(job: Job, pods: list[JobPod], *, now: float = 100, started: float | None = 0,
         condition: JobCondition | None = None):
    return plan_job(job, pods, now=now, started=started, condition=condition, backoff=BACKOFF)


@pytest.mark.parametrize(("job", "pods", "create", "stop"), [
    # completions 3, parallelism 2: never more than 2 at once, never more than the completions left
    (make_job(completions=3, parallelism=2), [], 2, ()),
    (make_job(completions=3, parallelism=2), [pod("a", "Running")], 1, ()),
    (make_job(completions=3, parallelism=2), [pod("a", "Running"), pod("b", "Pending")], 0, ()),
    (make_job(completions=3, parallelism=2), [pod("a", "Succeeded"), pod("b", "Succeeded")], 1, ()),
    (make_job(completions=3, parallelism=2), [pod("a", "Succeeded"), pod("b", "Running")], 1, ()),
    # parallelism lowered: the newest active pod goes
    (make_job(completions=5, parallelism=1), [pod("a", "Running", 1), pod("b", "Running", 2)], 0, ("b",)),
    # a work queue (no completions): parallelism pods; once one succeeded, no new ones
    (make_job(completions=None, parallelism=3), [], 3, ()),
    (make_job(completions=None, parallelism=3), [pod("a", "Succeeded"), pod("b", "Running")], 0, ()),
    (make_job(completions=2, parallelism=0), [], 0, ()),
])
def test_how_many_pods_a_job_runs(job, pods, create, stop):
    result = plan(job, pods)
    assert (len(result.create), result.stop, result.condition) == (create, stop, None)


def test_an_indexed_job_creates_the_lowest_missing_indexes_and_counts_each_index_once():
    job = make_job(completions=4, parallelism=2, mode="Indexed")
    assert plan(job, []).create == (0, 1)
    pods = [pod("a", "Succeeded", index=0), pod("b", "Running", index=1), pod("c", "Failed", index=2)]
    assert plan(job, pods, now=1000).create == (2,)
    twice = [pod("a", "Succeeded", index=0), pod("b", "Succeeded", index=0)]
    assert count(job, twice).succeeded == 1 and count(job, twice).completed_indexes == (0,)
    done = [pod(str(i), "Succeeded", index=i) for i in range(4)]
    result = plan(job, done)
    assert result.condition is not None and result.condition.type == "Complete"


@pytest.mark.parametrize(("job", "pods", "reason"), [
    (make_job(completions=2), [pod("a", "Succeeded"), pod("b", "Succeeded")], "CompletionsReached"),
    (make_job(completions=None), [pod("a", "Succeeded")], "CompletionsReached"),
    (make_job(completions=0), [], "CompletionsReached"),
    # backoffLimit 1 with Never: the second failed pod ends the Job
    (make_job(backoff=1), [pod("a", "Failed"), pod("b", "Failed")], "BackoffLimitExceeded"),
    (make_job(backoff=0), [pod("a", "Failed")], "BackoffLimitExceeded"),
    # OnFailure: the container's restarts count
    (make_job(backoff=2, restart="OnFailure"), [pod("a", "Running", restarts=2)], "BackoffLimitExceeded"),
    (make_job(backoff=0, restart="OnFailure"), [pod("a", "Running", restarts=1)], "BackoffLimitExceeded"),
])
def test_when_a_job_ends(job, pods, reason):
    result = plan(job, pods, now=1000)
    assert result.condition is not None and result.condition.reason == reason
    assert result.condition.type == ("Complete" if reason == "CompletionsReached" else "Failed")
    assert result.create == ()
    assert set(result.stop) == {p.name for p in pods if p.phase in ("Pending", "Running")}


def test_a_job_still_within_its_limits_goes_on():
    assert plan(make_job(backoff=2), [pod("a", "Failed", finished=0)], now=1000).condition is None
    assert plan(make_job(backoff=3, restart="OnFailure"), [pod("a", "Running", restarts=2)]).condition is None


def test_a_failed_pod_is_replaced_after_a_backoff():
    job = make_job(backoff=6)
    failed = [pod("a", "Failed", finished=50)]
    waiting = plan(job, failed, now=55)
    assert waiting.create == () and waiting.wake_at == 60  # 10 s after the first failure
    assert plan(job, failed, now=60).create == (None,)
    two = [pod("a", "Failed", finished=50), pod("b", "Failed", finished=70)]
    assert plan(job, two, now=85).wake_at == 90  # 20 s after the second


def test_active_deadline_seconds_fails_the_job_and_stops_its_pods():
    job = make_job(completions=2, deadline=30)
    running = [pod("a", "Running")]
    assert plan(job, running, now=29, started=0).wake_at == 30
    result = plan(job, running, now=30, started=0)
    assert result.condition is not None and result.condition.reason == "DeadlineExceeded"
    assert result.stop == ("a",)


def test_a_finished_job_does_nothing_but_stop_what_runs():
    done = JobCondition("Complete", "CompletionsReached", 5)
    assert plan(make_job(completions=3), [pod("a", "Running")], condition=done).create == ()
    assert plan(make_job(completions=3), [pod("a", "Running")], condition=done).stop == ("a",)


def test_a_suspended_job_stops_its_pods_and_creates_none():
    result = plan(make_job(completions=3, parallelism=2, suspend=True), [pod("a", "Running")])
    assert result.stop == ("a",) and result.create == ()
    assert result.condition is not None and result.condition.type == "Suspended"


def test_completed_indexes_are_written_as_ranges():
    assert format_indexes([0, 1, 2, 5, 7, 8]) == "0-2,5,7,8"
    assert format_indexes([1, 3, 4, 5, 7]) == "1,3-5,7"
    assert format_indexes([]) == ""


# --- cron schedules --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "problem"), [
    ("* * * *", "expected exactly 5 fields"),
    ("* * * * * *", "expected exactly 5 fields"),
    ("61 * * * *", "Bad minute"),
    ("TZ=UTC * * * * *", "use timeZone field instead"),
    ("@every 1m", "unrecognized descriptor"),
    ("0 0 L * *", "not standard cron"),
])
def test_schedules_kubernetes_refuses(text, problem):
    with pytest.raises(CronError, match=problem):
        parse_schedule(text)


def test_macros_and_time_zones():
    assert parse_schedule("@hourly").expression == "0 * * * *"
    berlin = parse_schedule("0 9 * * *", load_zone("Europe/Berlin"))
    winter = datetime(2024, 1, 10, 12, tzinfo=UTC)
    assert next(berlin.after(winter)) == datetime(2024, 1, 11, 8, tzinfo=UTC)  # 09:00 CET
    summer = datetime(2024, 7, 10, 12, tzinfo=UTC)
    assert next(berlin.after(summer)) == datetime(2024, 7, 11, 7, tzinfo=UTC)  # 09:00 CEST


T0 = datetime(2024, 1, 1, 0, 0, tzinfo=UTC)
EVERY_MINUTE = parse_schedule("*/1 * * * *")


def cron(now: datetime, *, last: datetime | None = None, active: tuple[str, ...] = (), policy: str = "Allow",
         deadline: int | None = None, suspend: bool = False, existing: tuple[str, ...] = ()):
    return plan_cronjob(name="tick", schedule=EVERY_MINUTE, now=now, created=T0 - timedelta(seconds=30),
                        last_schedule=last, suspend=suspend, concurrency=policy, starting_deadline=deadline,
                        active=active, existing=existing)


def test_a_cronjob_runs_the_most_recent_unmet_time_once():
    first = cron(T0 + timedelta(seconds=5))
    assert first.run_at == T0 and first.wake_at == T0 + timedelta(minutes=1)
    assert cron(T0 + timedelta(seconds=5), last=T0).run_at is None  # ran already
    assert cron(T0 + timedelta(seconds=5), existing=(job_name("tick", T0),)).run_at is None  # its Job exists
    late = cron(T0 + timedelta(minutes=5, seconds=1), last=T0)  # missed four: only the latest runs
    assert late.run_at == T0 + timedelta(minutes=5)
    assert job_name("tick", T0) == f"tick-{int(T0.timestamp()) // 60}"


def test_concurrency_policies():
    now = T0 + timedelta(minutes=1, seconds=2)
    assert cron(now, last=T0, active=("tick-a",)).run_at == T0 + timedelta(minutes=1)  # Allow
    forbid = cron(now, last=T0, active=("tick-a",), policy="Forbid")
    assert forbid.run_at is None and forbid.event is not None and forbid.event[1] == "JobAlreadyActive"
    replace = cron(now, last=T0, active=("tick-a",), policy="Replace")
    assert replace.run_at == T0 + timedelta(minutes=1) and replace.stop == ("tick-a",)
    # Forbid with the run still unmet when the active one ends: it runs then (no startingDeadlineSeconds)
    assert cron(now + timedelta(seconds=30), last=T0, policy="Forbid").run_at == T0 + timedelta(minutes=1)


def test_starting_deadline_drops_a_time_too_late_to_start():
    now = T0 + timedelta(minutes=1, seconds=20)
    assert cron(now, last=T0, deadline=10).run_at is None
    assert cron(now, last=T0, deadline=30).run_at == T0 + timedelta(minutes=1)


def test_a_suspended_cronjob_runs_nothing():
    assert cron(T0 + timedelta(seconds=5), suspend=True).run_at is None


def test_history_limits_drop_the_oldest_finished_jobs():
    finished = [FinishedJob("s1", True, 1), FinishedJob("s2", True, 2), FinishedJob("s3", True, 3),
                FinishedJob("f1", False, 1), FinishedJob("f2", False, 2)]
    assert set(plan_history(finished, successful_limit=2, failed_limit=1)) == {"s1", "f1"}
    assert set(plan_history(finished, successful_limit=0, failed_limit=0)) == {"s1", "s2", "s3", "f1", "f2"}
