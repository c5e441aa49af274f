"""A ReplicaSet adopts the bare Pods its selector matches, as in the ReplicaSet page of the Kubernetes docs
("non-template pod acquisitions"), with the real kubectl against a real agent (process driver): two bare Pods
labelled tier=frontend, then a ReplicaSet of 3 selecting them: it adopts both (their ownerReference, same uid,
same process) and makes one more; scaled to 1 it deletes two; deleted, it takes the adopted pod with it. An agent
restart keeps the adopted pods the ReplicaSet's."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import yaml

from tests.integration import test_kubectl
from tests.integration.test_kubectl_writes import get_json, until, write
from tests.integration.test_cluster_etcd import poll
from tests.integration.test_store_agent import AgentProcess

cluster = test_kubectl.cluster

pytestmark = [pytest.mark.slow]

SPEC = f"""\
terminationGracePeriodSeconds: 1
containers:
- name: main
  image: python
  command: ["{sys.executable}", "-c", "import time; time.sleep(3600)"]
"""
POD = f"""\
apiVersion: v1
kind: Pod
metadata:
  name: NAME
  labels: {{tier: frontend}}
spec:
{textwrap.indent(SPEC, "  ")}"""
REPLICASET = f"""\
apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: frontend}}
spec:
  replicas: 3
  selector:
    matchLabels: {{tier: frontend}}
  template:
    metadata:
      labels: {{tier: frontend}}
    spec:
{textwrap.indent(SPEC, "      ")}"""


async def frontend_pods(cluster) -> dict[str, dict]:
    """The pods labelled tier=frontend that are not being deleted, by name."""
    listed = await get_json(cluster, "pods", "-l", "tier=frontend")
    return {p["metadata"]["name"]: p for p in listed["items"] if not p["metadata"].get("deletionTimestamp")}


async def test_a_replicaset_adopts_the_bare_pods_its_selector_matches(cluster):
    for name in ("pod1", "pod2"):
        code, out, err = await cluster.kubectl("apply", "-f", await write(cluster, f"{name}.yaml",
                                                                          POD.replace("NAME", name)))
        assert code == 0, err
    before = await frontend_pods(cluster)
    assert set(before) == {"pod1", "pod2"}
    code, out, err = await cluster.kubectl("apply", "-f", await write(cluster, "frontend.yaml", REPLICASET))
    assert code == 0, err
    rs_uid = (await get_json(cluster, "replicaset", "frontend"))["metadata"]["uid"]

    async def three_owned() -> dict[str, dict]:
        pods = await frontend_pods(cluster)
        owned = [p for p in pods.values() if [(r["kind"], r["name"], r["uid"], r.get("controller"))
                 for r in p["metadata"].get("ownerReferences") or []] == [("ReplicaSet", "frontend", rs_uid, True)]]
        return pods if len(pods) == 3 and len(owned) == 3 else {}

    pods = await until(three_owned, "the ReplicaSet owning the two bare pods and one more")
    for name in ("pod1", "pod2"):  # adopted, not replaced: the same pod
        assert pods[name]["metadata"]["uid"] == before[name]["metadata"]["uid"]
    code, out, err = await cluster.kubectl("get", "rs", "frontend", "--no-headers")
    assert code == 0 and out.split()[1:3] == ["3", "3"], (out, err)

    code, out, err = await cluster.kubectl("scale", "rs", "frontend", "--replicas=1")
    assert code == 0, err

    async def one_left() -> bool:
        return len(await frontend_pods(cluster)) == 1

    await until(one_left, "two pods scaled down")
    code, out, err = await cluster.kubectl("delete", "rs", "frontend")
    assert code == 0, err

    async def none_left() -> bool:
        return not (await get_json(cluster, "pods", "-l", "tier=frontend"))["items"]

    await until(none_left, "the adopted pods gone with their ReplicaSet")


async def test_adopted_pods_stay_the_replicasets_across_an_agent_restart(tmp_path):
    """After a restart the store decides: the adopted pods are still the ReplicaSet's (same uid, same process),
    and it makes none again."""
    agent = AgentProcess(tmp_path / "state", tmp_path / "agent.log")
    await agent.start()
    try:
        status, body = await agent.request("POST", "/api/v1/namespaces/default/pods", json.dumps(
            yaml.safe_load(POD.replace("NAME", "pod1"))))
        assert status == 201, body
        status, body = await agent.request("POST", "/apis/apps/v1/namespaces/default/replicasets", json.dumps(
            {**yaml.safe_load(REPLICASET), "spec": {**yaml.safe_load(REPLICASET)["spec"], "replicas": 2}}))
        assert status == 201, body

        async def two_owned() -> dict[str, str]:  # and running (so stored: a pod starts once its object is)
            pods = await agent.items("pods")
            owned = {n: p["metadata"]["uid"] for n, p in pods.items()
                     if (p["metadata"].get("ownerReferences") or [{}])[0].get("name") == "frontend"
                     and p["status"].get("phase") == "Running"}
            return owned if len(pods) == 2 and len(owned) == 2 else {}

        before = await poll(two_owned)
        assert "pod1" in before
        await agent.stop()
        await agent.start()
        after = await poll(two_owned)
        assert after == before
    finally:
        status, _ = await agent.request("DELETE", "/apis/apps/v1/namespaces/default/replicasets/frontend")

        async def none_left() -> bool:
            return not await agent.items("pods")

        await poll(none_left)
        await agent.stop()
