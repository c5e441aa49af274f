"""`kubectl delete --cascade=orphan|foreground` against a real agent (process driver): orphaning a Deployment
leaves its ReplicaSet and pods running, the ReplicaSet without an owner; a foreground delete answers once the
pods are gone."""

from __future__ import annotations

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


async def test_orphan_of_a_statefulset_is_refused_and_changes_nothing(cluster):
    code, out, err = await cluster.kubectl("apply", "-f", await write(cluster, "sts.yaml", SLEEPER.replace(
        "NAME", "st").replace("kind: Deployment", "kind: StatefulSet").replace("spec:\n  replicas: 2",
                                                                                "spec:\n  serviceName: st\n  replicas: 0")))
    assert code == 0, err
    code, out, err = await cluster.kubectl("delete", "statefulset", "st", "--cascade=orphan")
    assert code == 1 and "orphans only a Deployment's ReplicaSets" in err, (out, err)
    assert (await get_json(cluster, "statefulset", "st"))["metadata"]["name"] == "st"
