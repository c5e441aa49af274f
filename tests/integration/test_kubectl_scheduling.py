"""The scheduling fields through the real kubectl against a real agent (process driver): a Deployment with
nodeSelector, affinity, tolerations and topologySpreadConstraints applies client-side and server-side (strict
field validation), reads back as written, `kubectl explain` documents the fields, and a bad one is refused by
its field path."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.integration import test_kubectl
from tests.integration.test_kubectl import WEB

cluster = test_kubectl.cluster

pytestmark = test_kubectl.pytestmark

SCHEDULING = """\
      nodeSelector: {kubernetes.io/os: linux}
      affinity:
        nodeAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 10
            preference:
              matchExpressions: [{key: kubernetes.io/arch, operator: Exists}]
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              labelSelector: {matchLabels: {app: web}}
              topologyKey: kubernetes.io/hostname
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 30}
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: ScheduleAnyway
        labelSelector: {matchLabels: {app: web}}
"""
DEPLOYMENT = WEB.split("---")[0].replace("      terminationGracePeriodSeconds: 1\n",
                                         "      terminationGracePeriodSeconds: 1\n" + SCHEDULING)


async def test_scheduling_fields_apply_read_back_and_explain(cluster, tmp_path):
    path = tmp_path / "web.yaml"
    path.write_text(DEPLOYMENT)
    code, out, err = await cluster.kubectl("apply", "-f", str(path))
    assert (code, out.strip()) == (0, "deployment.apps/web created"), err
    assert "ignored" not in err, err
    code, out, err = await cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    assert (code, out.strip()) == (0, "deployment.apps/web serverside-applied"), err
    code, out, err = await cluster.kubectl("get", "deploy", "web", "-o", "json")
    assert code == 0, err
    spec = json.loads(out)["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["tolerations"][0]["tolerationSeconds"] == 30
    assert spec["topologySpreadConstraints"][0]["whenUnsatisfiable"] == "ScheduleAnyway"
    term = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"

    code, out, err = await cluster.kubectl("explain", "deployment.spec.template.spec.affinity.podAntiAffinity")
    assert code == 0, err
    assert "preferredDuringSchedulingIgnoredDuringExecution" in out and "WeightedPodAffinityTerm" in out, out
    code, out, err = await cluster.kubectl("explain", "pods.spec.tolerations")
    assert code == 0 and "tolerationSeconds" in out, (out, err)


@pytest.mark.parametrize("flags", [(), ("--server-side",)])
async def test_a_bad_scheduling_field_is_refused_by_its_path(cluster, tmp_path, flags):
    bad = DEPLOYMENT.replace("operator: Exists, effect: NoExecute", "operator: Exists, effect: Sometimes")
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    code, out, err = await cluster.kubectl("apply", *flags, "-f", str(path))
    assert code != 0, out
    assert "spec.template.spec.tolerations[0].effect" in err and "Sometimes" in err, err


PINNED = """\
apiVersion: v1
kind: Pod
metadata: {name: pinned}
spec:
  nodeSelector: {disktype: ssd}
  containers: [{name: main, image: busybox, command: ["sleep", "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: plain}
spec:
  nodeSelector: {kubernetes.io/os: linux}
  containers: [{name: main, image: busybox, command: ["sleep", "3600"]}]
"""


async def test_one_node_admits_through_the_scheduler(cluster, tmp_path):
    """A standalone agent is a cluster of one node: a pod whose nodeSelector its node does not match waits with
    Kubernetes' words; one that matches (the node's own labels) runs."""
    path = tmp_path / "pinned.yaml"
    path.write_text(PINNED)
    code, out, err = await cluster.kubectl("apply", "-f", str(path))
    assert code == 0, err

    async def phases() -> dict[str, str]:
        code, out, err = await cluster.kubectl("get", "pods", "-o", "json")
        assert code == 0, err
        return {p["metadata"]["name"]: p["status"].get("phase", "") for p in json.loads(out)["items"]}

    for _ in range(150):
        if (await phases()).get("plain") == "Running":
            break
        await asyncio.sleep(0.2)
    assert (await phases()) == {"plain": "Running", "pinned": "Pending"}
    code, out, err = await cluster.kubectl("describe", "pod", "pinned")
    assert code == 0, err
    assert "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector." in out, out
