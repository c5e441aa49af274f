"""`kubectl delete --cascade=orphan|foreground` against a real agent (process driver): orphaning a Deployment
leaves its ReplicaSet and pods running, the ReplicaSet without an owner; orphaning a ReplicaSet, StatefulSet,
DaemonSet or Job leaves its pods running as bare pods, a CronJob its Jobs; a foreground delete answers once the
pods are gone."""

from __future__ import annotations

import asyncio
import sys

import pytest

from tests.integration import test_kubectl
from tests.integration.test_kubectl_writes import get_json, until, write

cluster = test_kubectl.cluster

pytestmark = [pytest.mark.slow]

SLEEPER = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: NAME
spec:
  replicas: 2
  selector:
    matchLabels: {app: NAME}
  template:
    metadata:
      labels: {app: NAME}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: python
        command: ["PYTHON", "-c", "import time; time.sleep(3600)"]
""".replace("PYTHON", sys.executable)


async def running_pods(cluster, app: str) -> list[str]:
    pods = (await get_json(cluster, "pods", "-l", f"app={app}"))["items"]
    return sorted(p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running")


async def started(cluster, name: str) -> list[str]:
    code, out, err = await cluster.kubectl("apply", "-f", await write(cluster, f"{name}.yaml",
                                                                      SLEEPER.replace("NAME", name)))
    assert code == 0, err

    async def two() -> list[str] | None:
        pods = await running_pods(cluster, name)
        return pods if len(pods) == 2 else None

    return await until(two, f"two pods of {name} running")


async def test_orphan_cascade_keeps_the_replicaset_and_its_pods_running_without_an_owner(cluster):
    pods = await started(cluster, "orph")
    code, out, err = await cluster.kubectl("delete", "deployment", "orph", "--cascade=orphan")
    assert (code, out.strip()) == (0, 'deployment.apps "orph" deleted from default namespace'), err
    code, out, err = await cluster.kubectl("get", "deployment", "orph")
    assert code == 1 and "NotFound" in err, (out, err)

    (rs,) = (await get_json(cluster, "rs", "-l", "app=orph"))["items"]
    assert "ownerReferences" not in rs["metadata"], rs["metadata"]
    assert rs["spec"]["replicas"] == 2 and rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    code, out, err = await cluster.kubectl("get", "rs", rs["metadata"]["name"], "-o",
                                           "custom-columns=NAME:.metadata.name,OWNER:.metadata.ownerReferences")
    assert code == 0 and out.split("\n")[1].split() == [rs["metadata"]["name"], "<none>"], (out, err)
    assert await running_pods(cluster, "orph") == pods  # the same pods, still running
    for pod in (await get_json(cluster, "pods", "-l", "app=orph"))["items"]:
        (ref,) = pod["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"]) == ("ReplicaSet", rs["metadata"]["name"], rs["metadata"]["uid"])

    # the ReplicaSet is its own now: scaling it works, deleting it takes its pods
    code, out, err = await cluster.kubectl("scale", "rs", rs["metadata"]["name"], "--replicas=1")
    assert code == 0, err

    async def one() -> bool:
        return len(await running_pods(cluster, "orph")) == 1

    await until(one, "the orphaned ReplicaSet scaled to 1")
    code, out, err = await cluster.kubectl("delete", "rs", rs["metadata"]["name"])
    assert code == 0, err

    async def none() -> bool:
        return not (await get_json(cluster, "pods", "-l", "app=orph"))["items"]

    await until(none, "the orphaned ReplicaSet's pods gone with it")


async def test_foreground_cascade_answers_once_the_pods_are_gone(cluster):
    await started(cluster, "fore")
    code, out, err = await cluster.kubectl("delete", "deployment", "fore", "--cascade=foreground")
    assert (code, out.strip()) == (0, 'deployment.apps "fore" deleted from default namespace'), err
    assert (await get_json(cluster, "pods", "-l", "app=fore"))["items"] == []
    assert (await get_json(cluster, "rs", "-l", "app=fore"))["items"] == []


TEMPLATE = """\
  template:
    metadata:
      labels: {app: NAME}
    spec:
      terminationGracePeriodSeconds: 1
      RESTART
      containers:
      - name: main
        image: python
        command: ["PYTHON", "-c", "import time; time.sleep(3600)"]
""".replace("PYTHON", sys.executable)
OWNERS = {  # each owner kind meshd has that runs pods: its manifest and how many pods it runs here
    "ReplicaSet": ("apps/v1", "replicas: 2\n  selector:\n    matchLabels: {app: NAME}\n", 2),
    "StatefulSet": ("apps/v1", "serviceName: NAME\n  replicas: 2\n  selector:\n    matchLabels: {app: NAME}\n", 2),
    "DaemonSet": ("apps/v1", "selector:\n    matchLabels: {app: NAME}\n", 1),
    "Job": ("batch/v1", "parallelism: 2\n  completions: 2\n", 2),
}


def owner_manifest(kind: str, name: str) -> str:
    api_version, spec, _ = OWNERS[kind]
    restart = "restartPolicy: Never" if kind == "Job" else ""
    return (f"apiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n  {spec}"
            + TEMPLATE.replace("RESTART", restart)).replace("NAME", name)


async def pods_of(cluster, app: str) -> dict[str, dict]:
    return {p["metadata"]["name"]: p for p in (await get_json(cluster, "pods", "-l", f"app={app}"))["items"]}


@pytest.mark.parametrize("kind", list(OWNERS))
async def test_orphan_cascade_keeps_the_pods_of_every_owner_kind_running_without_an_owner(cluster, kind):
    name = f"orph-{kind.lower()}"
    code, out, err = await cluster.kubectl("apply", "-f", await write(cluster, f"{name}.yaml",
                                                                      owner_manifest(kind, name)))
    assert code == 0, err
    count = OWNERS[kind][2]

    async def running() -> dict[str, dict] | None:
        pods = await pods_of(cluster, name)
        up = {n: p for n, p in pods.items() if p["status"].get("phase") == "Running"}
        return up if len(up) == count else None

    before = await until(running, f"{count} pods of the {kind} running")
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == kind for p in before.values())
    resource = {"ReplicaSet": "rs", "StatefulSet": "statefulset", "DaemonSet": "daemonset", "Job": "job"}[kind]
    code, out, err = await cluster.kubectl("delete", resource, name, "--cascade=orphan")
    assert code == 0 and out.strip().endswith(f'"{name}" deleted from default namespace'), (out, err)
    code, out, err = await cluster.kubectl("get", resource, name)
    assert code == 1 and "NotFound" in err, (out, err)

    await asyncio.sleep(3)  # the controllers have run since: nothing may have stopped the pods
    after = await pods_of(cluster, name)
    assert sorted(after) == sorted(before)  # the same pods
    for pod_name, pod in after.items():
        assert "ownerReferences" not in pod["metadata"], pod["metadata"]
        assert pod["status"]["phase"] == "Running", pod["status"]
        (status,) = pod["status"]["containerStatuses"]
        (was,) = before[pod_name]["status"]["containerStatuses"]
        assert (status["containerID"], status["restartCount"]) == (was["containerID"], was["restartCount"])
    code, out, err = await cluster.kubectl("get", "pods", "-l", f"app={name}", "-o",
                                           "custom-columns=NAME:.metadata.name,OWNER:.metadata.ownerReferences",
                                           "--no-headers")
    assert code == 0 and {tuple(line.split()) for line in out.splitlines()} == {(n, "<none>") for n in before}

    # they are bare pods now: deleting one deletes it, and nothing makes it again
    victim = sorted(before)[0]
    code, out, err = await cluster.kubectl("delete", "pod", victim, "--wait=false")
    assert code == 0, err

    async def gone() -> bool:
        return sorted(await pods_of(cluster, name)) == sorted(before)[1:]

    await until(gone, f"the orphaned pod {victim} deleted and not made again")


CRON = """\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "*/1 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - name: main
            image: python
            command: ["PYTHON", "-c", "import time; time.sleep(3600)"]
""".replace("PYTHON", sys.executable)


async def test_orphan_cascade_of_a_cronjob_keeps_its_jobs_running_as_their_own(cluster):
    code, out, err = await cluster.kubectl("apply", "-f", await write(cluster, "cron.yaml", CRON))
    assert code == 0, err

    async def a_job() -> dict | None:
        jobs = (await get_json(cluster, "jobs"))["items"]
        return jobs[0] if jobs and jobs[0]["status"].get("active") == 1 else None

    job = await until(a_job, "the CronJob's first Job running", tries=1200)  # at the next minute
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    code, out, err = await cluster.kubectl("delete", "cronjob", "tick", "--cascade=orphan")
    assert code == 0, err
    await asyncio.sleep(3)
    (kept,) = (await get_json(cluster, "jobs"))["items"]
    assert kept["metadata"]["name"] == job["metadata"]["name"] and kept["metadata"]["uid"] == job["metadata"]["uid"]
    assert "ownerReferences" not in kept["metadata"] and kept["status"]["active"] == 1, kept
    (pod,) = (await get_json(cluster, "pods", "-l", f"job-name={job['metadata']['name']}"))["items"]
    assert pod["status"]["phase"] == "Running" and pod["metadata"]["ownerReferences"][0]["kind"] == "Job"


async def test_a_deployment_applied_again_adopts_its_orphaned_replicaset_and_pods(cluster):
    """As Kubernetes' Deployment controller: an orphaned ReplicaSet its selector matches becomes its own again
    (the pods keep running, none is made twice): delete --cascade=orphan, then apply, is how users change a
    Deployment in place without a restart."""
    pods = await started(cluster, "adopt")
    code, out, err = await cluster.kubectl("delete", "deployment", "adopt", "--cascade=orphan")
    assert code == 0, err
    (orphan,) = (await get_json(cluster, "rs", "-l", "app=adopt"))["items"]
    assert "ownerReferences" not in orphan["metadata"]
    assert await started(cluster, "adopt") == pods  # the same two pods, not two more

    deployment = await get_json(cluster, "deployment", "adopt")

    async def adopted() -> dict | None:
        (rs,) = (await get_json(cluster, "rs", "-l", "app=adopt"))["items"]
        refs = rs["metadata"].get("ownerReferences") or []
        return rs if [r.get("uid") for r in refs] == [deployment["metadata"]["uid"]] else None

    rs = await until(adopted, "the orphaned ReplicaSet owned by the new Deployment")
    assert rs["metadata"]["name"] == orphan["metadata"]["name"]
    await asyncio.sleep(1.0)  # nothing more is made once adopted
    assert await running_pods(cluster, "adopt") == pods
    assert len((await get_json(cluster, "pods", "-l", "app=adopt"))["items"]) == 2
