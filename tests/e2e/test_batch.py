"""Jobs, CronJobs and Namespaces end to end: the real kubectl (v1.37) against a real agent on the real Docker
engine. A Job of 3 completions runs at most 2 pods at once; a failing Job stops at its backoffLimit; an
Indexed Job's pods see their index; a CronJob fires every minute and Forbid holds back the next run while one
runs (on the agent's fast CronJob clock: its minutes last seconds); deleting a namespace deletes what is in it."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.integration import test_kubectl
from tests.integration.test_cli_fake_api import meshd
from tests.integration.test_kubectl import Cluster

cluster = test_kubectl.cluster  # the fixture: a real agent, kubectl pointed at it

pytestmark = [pytest.mark.slow, pytest.mark.docker,
              pytest.mark.parametrize("cluster", ["docker"], indirect=True)]
IMAGE = "busybox"


@pytest.fixture(autouse=True)
def _images(busybox_image: str, pause_image: str) -> None:
    """Built (or found) before the agent starts, off its loop."""
    global IMAGE
    IMAGE = busybox_image


def job(name: str, command: str, *, spec: str = "", restart: str = "Never") -> str:
    return f"""\
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{spec}  template:
    spec:
      restartPolicy: {restart}
      terminationGracePeriodSeconds: 1
      containers:
      - name: work
        image: {IMAGE}
        command: ["sh", "-c", "{command}"]
"""


async def apply(cluster: Cluster, name: str, text: str) -> str:
    path = cluster.cache / f"{name}.yaml"
    path.write_text(text)
    code, out, err = await cluster.kubectl("apply", "-f", str(path))
    assert code == 0, (out, err)
    return out


async def get_json(cluster: Cluster, *args: str) -> dict:
    code, out, err = await cluster.kubectl("get", *args, "-o", "json")
    assert code == 0, err
    return json.loads(out)


async def until(check, what: str, *, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.3)
    raise AssertionError(f"never: {what}")


async def job_pods(cluster: Cluster, name: str) -> list[dict]:
    return (await get_json(cluster, "pods", "-l", f"job-name={name}"))["items"]


async def test_a_job_of_3_completions_runs_2_pods_at_a_time_and_completes(cluster):
    await apply(cluster, "three", job("three", "sleep 2; echo done", spec="  completions: 3\n  parallelism: 2\n"))
    most = 0

    async def finished() -> bool:
        nonlocal most
        pods = await job_pods(cluster, "three")
        most = max(most, sum(1 for p in pods if p["status"]["phase"] in ("Pending", "Running")))
        return sum(1 for p in pods if p["status"]["phase"] == "Succeeded") >= 3

    await until(finished, "3 pods succeeded")
    code, out, err = await cluster.kubectl("wait", "--for=condition=complete", "job/three", "--timeout=60s")
    assert code == 0 and "job.batch/three condition met" in out, (out, err)
    assert most <= 2
    status = (await get_json(cluster, "job", "three"))["status"]
    assert (status["succeeded"], status["active"], status["failed"]) == (3, 0, 0)
    assert status["startTime"] and status["completionTime"]
    pods = await job_pods(cluster, "three")
    assert len(pods) == 3 and all(p["metadata"]["ownerReferences"][0]["kind"] == "Job" for p in pods)
    code, out, err = await cluster.kubectl("get", "jobs")
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], out
    assert row.split()[:3] == ["three", "Complete", "3/3"], out
    code, out, err = await cluster.kubectl("get", "pods")
    assert out.count("Completed") == 3, out  # finished pods stay until the Job goes
    code, out, err = await cluster.kubectl("logs", "job/three")
    assert code == 0 and out.strip() == "done", (out, err)
    code, out, err = await cluster.kubectl("delete", "job", "three")
    assert code == 0, err
    await until(lambda: _none(job_pods(cluster, "three")), "the Job's pods gone with it")


async def _none(pods) -> bool:
    return not await pods


async def test_a_failing_job_stops_at_its_backoff_limit(cluster):
    await apply(cluster, "fails", job("fails", "exit 3", spec="  backoffLimit: 1\n"))

    async def failed() -> dict | None:
        status = (await get_json(cluster, "job", "fails"))["status"]
        return status if any(c["type"] == "Failed" for c in status.get("conditions", [])) else None

    status = await until(failed, "the Job Failed")
    condition = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert condition["reason"] == "BackoffLimitExceeded", status
    assert status["failed"] == 2 and status["active"] == 0, status  # backoffLimit 1: the second failure ends it
    pods = await job_pods(cluster, "fails")
    assert len(pods) == 2 and all(p["status"]["phase"] == "Failed" for p in pods)
    code, out, err = await cluster.kubectl("get", "job", "fails")
    assert out.splitlines()[1].split()[:3] == ["fails", "Failed", "0/1"], out


async def test_an_indexed_job_gives_each_pod_its_index(cluster):
    spec = "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n"
    await apply(cluster, "indexed", job("indexed", "echo index=$JOB_COMPLETION_INDEX host=$(hostname)", spec=spec))
    code, out, err = await cluster.kubectl("wait", "--for=condition=complete", "job/indexed", "--timeout=90s")
    assert code == 0, (out, err)
    status = (await get_json(cluster, "job", "indexed"))["status"]
    assert status["completedIndexes"] == "0-2", status
    seen = {}
    for pod in await job_pods(cluster, "indexed"):
        index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        code, out, err = await cluster.kubectl("logs", pod["metadata"]["name"])
        seen[index] = out.strip()
    assert seen == {i: f"index={i} host=indexed-{i}" for i in "012"}


async def test_bad_jobs_are_refused_with_the_field_path_and_nothing_changes(cluster):
    for text, field in ((job("bad", "true", restart="Always"), "spec.template.spec.restartPolicy"),
                        (job("bad", "true", spec="  completions: -1\n"), "spec.completions"),
                        (CRON.replace("*/1 * * * *", "*/1 * * *"), "spec.schedule")):
        path = cluster.cache / "bad.yaml"
        path.write_text(text)
        code, out, err = await cluster.kubectl("apply", "-f", str(path))
        assert code != 0 and field in err, (out, err)
    path.write_text(CRON.replace("batch/v1", "batch/v1beta1"))
    code, out, err = await cluster.kubectl("apply", "-f", str(path))  # kubectl finds no such version served
    assert code != 0 and 'no matches for kind "CronJob" in version "batch/v1beta1"' in err, (out, err)
    code, out, err = await meshd(cluster.api, "apply", "-f", str(path))
    assert code != 0 and "use apiVersion: batch/v1" in err, (out, err)
    code, out, err = await cluster.kubectl("get", "jobs,cronjobs")
    assert "No resources found" in err, (out, err)


CRON_MINUTE = 3  # seconds a schedule minute lasts where a test starts its agent with a fast CronJob clock
CRON = """\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "*/1 * * * *"
  timeZone: Etc/UTC
  concurrencyPolicy: Forbid
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - name: tick
            image: busybox
            command: ["sh", "-c", "SLEEP"]
"""


@pytest.mark.agent_options(cron_minute=CRON_MINUTE)
async def test_a_cronjob_fires_every_minute_and_forbid_holds_the_next_run_back(cluster):
    """The first run outlasts the next minutes (the agent's --cron-minute clock: a minute lasts 3 s), so the
    next run waits until it ends (Forbid): never two at once."""
    await apply(cluster, "tick", CRON.replace("SLEEP", f"sleep {2 * CRON_MINUTE}").replace("busybox", IMAGE))
    code, out, err = await cluster.kubectl("get", "cronjobs")
    assert out.split()[:7] == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE"], out
    most = 0

    async def two_jobs() -> bool:
        nonlocal most
        jobs = (await get_json(cluster, "jobs"))["items"]
        running = [j for j in jobs if not any(c["type"] in ("Complete", "Failed")
                                              for c in j["status"].get("conditions", []))]
        most = max(most, len(running))
        return len(jobs) >= 2

    await until(two_jobs, "a second scheduled job")
    assert most == 1
    first, second = sorted(int(j["metadata"]["name"].removeprefix("tick-")) for j in await _items(cluster, "jobs"))[:2]
    assert second >= first + 2  # the first ran two minutes: the later of the minutes held back ran, not both
    cron = await get_json(cluster, "cronjob", "tick")
    assert cron["status"]["lastScheduleTime"]
    code, out, err = await cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=tick")
    assert "JobAlreadyActive" in out, out
    code, out, err = await cluster.kubectl("delete", "cronjob", "tick")
    assert code == 0, err
    await until(lambda: _none(_items(cluster, "jobs")), "its Jobs deleted with it")


async def _items(cluster: Cluster, kind: str) -> list[dict]:
    return (await get_json(cluster, kind))["items"]


async def test_deleting_a_namespace_deletes_what_is_in_it(cluster):
    code, out, err = await cluster.kubectl("get", "namespaces")
    assert {line.split()[0] for line in out.splitlines()[1:]} >= {"default", "kube-system", "kube-public",
                                                                   "kube-node-lease"}, out
    path = cluster.cache / "job.yaml"
    path.write_text(job("sleeper", "sleep 300") + DEPLOYMENT.replace("busybox", IMAGE))
    code, out, err = await cluster.kubectl("apply", "-n", "shop", "-f", str(path))
    assert code != 0 and 'namespaces "shop" not found' in err, (out, err)
    code, out, err = await cluster.kubectl("create", "namespace", "shop")
    assert code == 0 and "namespace/shop created" in out, (out, err)
    code, out, err = await cluster.kubectl("apply", "-n", "shop", "-f", str(path))
    assert code == 0, err
    await until(lambda: _running(cluster, 3), "the job's pod and the deployment's two run in shop")
    code, out, err = await cluster.kubectl("delete", "namespace", "shop", "--timeout=90s")
    assert code == 0 and 'namespace "shop" deleted' in out, (out, err)
    code, out, err = await cluster.kubectl("get", "all", "-n", "shop")
    assert "No resources found" in err, (out, err)
    code, out, err = await cluster.kubectl("get", "namespace", "shop")
    assert code != 0 and 'namespaces "shop" not found' in err, (out, err)


async def _running(cluster: Cluster, pods: int) -> bool:
    found = (await get_json(cluster, "pods", "-n", "shop"))["items"]
    return sum(1 for p in found if p["status"]["phase"] == "Running") == pods


DEPLOYMENT = """\
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: idle
spec:
  replicas: 2
  selector:
    matchLabels: {app: idle}
  template:
    metadata:
      labels: {app: idle}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: idle, image: busybox, command: ["sleep", "300"]}
---
apiVersion: v1
kind: Service
metadata:
  name: idle
spec:
  selector: {app: idle}
  ports:
  - {port: 80}
"""


async def test_a_job_from_a_suspended_cronjob_runs_and_its_ttl_removes_it(cluster):
    suspended = CRON.replace("SLEEP", "echo manual").replace("busybox", IMAGE).replace(
        "  concurrencyPolicy: Forbid\n", "  suspend: true\n").replace(
        "    spec:\n      template:", "    spec:\n      ttlSecondsAfterFinished: 2\n      template:")
    await apply(cluster, "suspended", suspended)
    code, out, err = await cluster.kubectl("create", "job", "once", "--from=cronjob/tick")
    assert code == 0 and "job.batch/once created" in out, (out, err)
    code, out, err = await cluster.kubectl("wait", "--for=condition=complete", "job/once", "--timeout=60s")
    assert code == 0, (out, err)
    code, out, err = await cluster.kubectl("logs", "job/once")
    assert out.strip() == "manual", (out, err)

    async def gone() -> bool:
        code, out, err = await cluster.kubectl("get", "job", "once")
        return code != 0 and 'jobs.batch "once" not found' in err

    await until(gone, "the finished Job removed after its TTL")
    await until(lambda: _none(job_pods(cluster, "once")), "its pod gone with it")
    cron = await get_json(cluster, "cronjob", "tick")
    assert cron["spec"]["suspend"] is True and "lastScheduleTime" not in cron["status"]  # never scheduled


async def test_meshd_apply_creates_the_namespace_a_manifest_needs_and_says_so(cluster):
    path = cluster.cache / "tools.yaml"
    path.write_text(job("migrate", "true").replace("name: migrate", "name: migrate\n  namespace: tools"))
    code, out, err = await meshd(cluster.api, "apply", "-f", str(path))
    assert code == 0 and "namespace/tools created" in out, (out, err)
    assert 'namespace "tools" did not exist: created' in err, (out, err)
    code, out, err = await cluster.kubectl("wait", "--for=condition=complete", "job/migrate", "-n", "tools",
                                           "--timeout=60s")
    assert code == 0, (out, err)
    code, out, err = await cluster.kubectl("get", "namespace", "tools", "--no-headers")
    assert out.split()[:2] == ["tools", "Active"], (out, err)


async def test_kubectl_apply_of_a_namespace_and_what_lives_in_it(cluster):
    text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: batch\n  labels: {team: data}\n---\n" + job(
        "nightly", "echo ran").replace("name: nightly", "name: nightly\n  namespace: batch")
    out = await apply(cluster, "both", text)
    assert out.splitlines() == ["namespace/batch created", "job.batch/nightly created"], out
    assert (await apply(cluster, "both", text)).splitlines() == ["namespace/batch unchanged",
                                                                 "job.batch/nightly unchanged"]
    namespace = await get_json(cluster, "namespace", "batch")
    assert namespace["metadata"]["labels"] == {"team": "data", "kubernetes.io/metadata.name": "batch"}
    code, out, err = await cluster.kubectl("wait", "--for=condition=complete", "job/nightly", "-n", "batch",
                                           "--timeout=60s")
    assert code == 0, (out, err)
    code, out, err = await cluster.kubectl("delete", "-f", str(cluster.cache / "both.yaml"))
    assert code == 0, (out, err)
    code, out, err = await cluster.kubectl("get", "namespace", "batch")
    assert code != 0 and 'namespaces "batch" not found' in err, (out, err)


async def test_active_deadline_fails_a_job_and_stops_its_pod(cluster):
    await apply(cluster, "slow", job("slow", "sleep 300", spec="  activeDeadlineSeconds: 2\n"))
    code, out, err = await cluster.kubectl("wait", "--for=condition=failed", "job/slow", "--timeout=60s")
    assert code == 0, (out, err)
    status = (await get_json(cluster, "job", "slow"))["status"]
    assert [c["reason"] for c in status["conditions"] if c["type"] == "Failed"] == ["DeadlineExceeded"]
    assert (status["active"], status["failed"]) == (0, 1), status
    await until(lambda: _none(job_pods(cluster, "slow")), "its running pod stopped")


async def test_a_suspended_job_runs_nothing_until_resumed(cluster):
    await apply(cluster, "later", job("later", "echo resumed", spec="  suspend: true\n"))
    code, out, err = await cluster.kubectl("wait", "--for=condition=suspended", "job/later", "--timeout=30s")
    assert code == 0, (out, err)
    assert not await job_pods(cluster, "later")
    code, out, err = await cluster.kubectl("patch", "job", "later", "-p", '{"spec":{"suspend":false}}')
    assert code == 0, (out, err)
    code, out, err = await cluster.kubectl("wait", "--for=condition=complete", "job/later", "--timeout=60s")
    assert code == 0, (out, err)
    code, out, err = await cluster.kubectl("logs", "job/later")
    assert out.strip() == "resumed", (out, err)
