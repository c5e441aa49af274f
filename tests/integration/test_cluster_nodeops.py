"""What users do to the nodes of a cluster, with the real kubectl and the Python kubernetes client, on three
`meshd agent --store etcd://...` processes (process driver) on one real etcd: `kubectl cordon`/`uncordon`
(the agent's heartbeat keeps the cordon), `kubectl drain` (pods evicted through `pods/eviction`, made again on
the other nodes, a DaemonSet's pod left), `kubectl delete node` (its pods made again elsewhere, its certificates
revoked, its Lease gone, its agent stops its pods and exits 1 saying why, and the node is not registered
again); the Python client's eviction and node patch; the leader deleting expired bootstrap tokens."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from meshd.cluster.pki import SERIALS_ANNOTATION, parse_serials
from tests.integration.etcd_harness import EtcdCluster
from tests.integration.test_cluster_etcd import leaders, poll
from tests.integration.test_cluster_pods import (
    DAEMONSET,
    DEPLOYMENT,
    PodMember,
    apply,
    kill_pods,
    pods_by_node,
    running_pods,
)

pytestmark = pytest.mark.slow


class NodeMember(PodMember):
    def command(self) -> list[str]:
        return [*super().command(), "--keep-expired-tokens", "1"]


@pytest.fixture
async def members(tmp_path: Path, etcd: EtcdCluster) -> AsyncIterator[list[NodeMember]]:
    started = [NodeMember(tmp_path / name, name, etcd.url) for name in ("n1", "n2", "n3")]
    try:
        await asyncio.gather(*(m.start() for m in started))
        yield started
    finally:
        alive = [m for m in started if m.proc is not None and m.proc.returncode is None]
        try:
            if alive:
                for group, resource in (("/apis/apps/v1", "deployments"), ("/apis/apps/v1", "daemonsets"),
                                        ("/api/v1", "pods")):
                    status, body = await alive[0].request("GET", f"{group}/namespaces/default/{resource}")
                    for item in body.get("items", []) if status == 200 else []:
                        await alive[0].request("DELETE", f"{group}/namespaces/default/{resource}/"
                                                         f"{item['metadata']['name']}")
                await poll(lambda: _nothing_runs(alive), timeout=60)
        except Exception as error:  # noqa: BLE001 - whatever happened, every agent and pod is stopped below
            print(f"cleaning up: {error!r}")
        await asyncio.gather(*(m.stop() for m in started))
        for member in started:
            kill_pods(member)


async def _nothing_runs(members: list[NodeMember]) -> bool:
    return not any(running_pods(m) for m in members) and not await members[0].items("pods")


async def node_lines(member: NodeMember) -> dict[str, str]:
    """`kubectl get nodes`: name -> STATUS (Ready, Ready,SchedulingDisabled, NotReady...)."""
    code, out, err = await member.kubectl("get", "nodes", "--no-headers")
    assert code == 0, err
    return {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}


async def kubectl_ok(member: NodeMember, *args: str) -> str:
    code, out, err = await member.kubectl(*args)
    assert code == 0, f"kubectl {' '.join(args)}: {err}"
    return out + err


async def running_on(member: NodeMember, prefix: str) -> dict[str, int]:
    """node -> how many `prefix` pods run there, when every one of them is Running (else {})."""
    nodes = await pods_by_node(member, prefix)
    if not all(status == "Running" for pods in nodes.values() for _, status in pods):
        return {}
    return {node: len(pods) for node, pods in nodes.items()}


async def test_cordon_drain_and_delete_a_node_with_kubectl(members: list[NodeMember]) -> None:
    n1 = members[0]
    await apply(n1, "spread.yaml", DEPLOYMENT)
    await apply(n1, "agent.yaml", DAEMONSET)
    assert await poll(lambda: _spread_is(n1, "spread-", {"n1": 2, "n2": 2, "n3": 2}), timeout=120)
    assert await poll(lambda: _spread_is(n1, "agent-", {"n1": 1, "n2": 1, "n3": 1}), timeout=120)

    # cordon: SchedulingDisabled, kept by the node's heartbeat; new pods go elsewhere
    assert 'node/n3 cordoned' in await kubectl_ok(n1, "cordon", "n3")
    await asyncio.sleep(3)  # several heartbeats of n3 (every grace/3 = 1 s)
    assert (await node_lines(n1))["n3"] == "Ready,SchedulingDisabled"
    await kubectl_ok(n1, "scale", "deployment", "spread", "--replicas", "8")
    placed = await poll(lambda: _all_running(n1, "spread-", 8), timeout=120)
    assert placed.get("n3") == 2, placed  # the two new ones went to n1 and n2
    await kubectl_ok(n1, "scale", "deployment", "spread", "--replicas", "6")
    assert 'node/n3 uncordoned' in await kubectl_ok(n1, "uncordon", "n3")
    assert (await node_lines(n1))["n3"] == "Ready"
    code, out, _ = await n1.kubectl("get", "node", "n3", "-o", "json")
    assert code == 0 and "unschedulable" not in json.loads(out)["spec"]

    # drain: cordoned, its pods evicted (the eviction subresource) and made again on n1 and n3
    assert await poll(lambda: _all_running(n1, "spread-", 6), timeout=120)
    text = await kubectl_ok(n1, "drain", "n2", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout", "120s")
    assert "evicting pod default/spread-" in text and "node/n2 drained" in text, text
    assert (await node_lines(n1))["n2"] == "Ready,SchedulingDisabled"
    after = await poll(lambda: _all_running(n1, "spread-", 6), timeout=120)
    assert "n2" not in after, after
    assert (await running_on(n1, "agent-")).get("n2") == 1  # the DaemonSet's pod stays (--ignore-daemonsets)
    code, out, _ = await n1.kubectl("get", "events", "--field-selector", "reason=Evicted", "--no-headers")
    assert code == 0 and "Evicted" in out
    await kubectl_ok(n1, "uncordon", "n2")

    # delete node: a node that does not lead
    (leader,) = await poll(lambda: leaders(members))
    victim = next(m for m in reversed(members) if m.name != leader)
    survivors = {m.name for m in members} - {victim.name}
    code, out, _ = await n1.kubectl("get", "node", victim.name, "-o", "json")
    serials = parse_serials(json.loads(out)["metadata"]["annotations"][SERIALS_ANNOTATION])
    assert serials
    assert f'node "{victim.name}" deleted' in await kubectl_ok(n1, "delete", "node", victim.name)
    assert victim.proc is not None
    code = await asyncio.wait_for(victim.proc.wait(), 150)
    log = victim.log.read_text()
    assert code == 1 and f"node {victim.name} was deleted from the cluster" in log, log[-3000:]
    assert "meshd agent --join TOKEN" in log
    assert not running_pods(victim)  # it stopped its pods before exiting
    async def moved_off_victim() -> dict[str, int]:  # (the deleted node's Pod objects go once the leader saw it)
        found = await _all_running(n1, "spread-", 6)
        return found if found and victim.name not in found else {}

    moved = await poll(moved_off_victim, timeout=120)
    assert set(moved) == survivors, moved
    assert await poll(lambda: _spread_is(n1, "agent-", dict.fromkeys(survivors, 1)), timeout=60)
    assert set(await node_lines(n1)) == survivors  # not registered again
    code, out, _ = await n1.kubectl("get", "configmap", "meshd-revoked", "-n", "kube-system", "-o", "json")
    revoked = json.loads(out)["data"] if code == 0 else {}
    assert {f"{serial:x}" for serial, _ in serials} <= set(revoked), revoked
    code, out, _ = await n1.kubectl("get", "leases", "-n", "kube-node-lease", "--no-headers")
    assert victim.name not in {line.split()[0] for line in out.splitlines() if line.strip()}
    code, _, err = await n1.kubectl("delete", "node", victim.name)
    assert code == 1 and f'nodes "{victim.name}" not found' in err


async def _spread_is(member: NodeMember, prefix: str, wanted: dict[str, int]) -> bool:
    return await running_on(member, prefix) == wanted


async def _all_running(member: NodeMember, prefix: str, count: int) -> dict[str, int]:
    found = await running_on(member, prefix)
    return found if sum(found.values()) == count else {}


def python_client(member: NodeMember) -> Any:
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(config_file=str(member.kubeconfig)))


async def test_the_python_client_labels_cordons_and_evicts(members: list[NodeMember]) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    n1 = members[0]
    await apply(n1, "spread.yaml", DEPLOYMENT)
    assert await poll(lambda: _all_running(n1, "spread-", 6), timeout=120)
    api = python_client(n1)

    def patch_node() -> Any:
        return api.patch_node("n2", {"metadata": {"labels": {"zone": "b"}}, "spec": {"unschedulable": True}})
    patched = await asyncio.to_thread(patch_node)
    assert patched.spec.unschedulable is True and patched.metadata.labels["zone"] == "b"
    await asyncio.sleep(3)  # n2's heartbeats keep both
    shown = await asyncio.to_thread(api.read_node, "n2")
    assert shown.spec.unschedulable is True and shown.metadata.labels["zone"] == "b"

    def refused(call: Any) -> ApiException:
        try:
            call()
        except ApiException as error:
            return error
        raise AssertionError("not refused")
    error = await asyncio.to_thread(refused, lambda: api.patch_node("n2", {"status": {"capacity": {"cpu": "64"}}}))
    assert error.status == 400 and "a client may change only" in error.body
    error = await asyncio.to_thread(refused, lambda: api.delete_node("nowhere"))
    assert error.status == 404

    on_n2 = [p for p in (await asyncio.to_thread(api.list_namespaced_pod, "default",
                                                 field_selector="spec.nodeName=n2")).items
             if p.metadata.name.startswith("spread-")]
    assert len(on_n2) == 2
    for pod in on_n2:
        eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace="default"))
        await asyncio.to_thread(api.create_namespaced_pod_eviction, pod.metadata.name, "default", eviction)
        # answered after the deletion is written: the next read sees the pod Terminating (or gone)
        listed = await asyncio.to_thread(api.list_namespaced_pod, "default",
                                         field_selector=f"metadata.name={pod.metadata.name}")
        assert all(p.metadata.deletion_timestamp is not None for p in listed.items), listed.items
    error = await asyncio.to_thread(refused, lambda: api.create_namespaced_pod_eviction(
        "nothing", "default", client.V1Eviction(metadata=client.V1ObjectMeta(name="nothing"))))
    assert error.status == 404
    async def moved_off_n2() -> dict[str, int]:  # (an evicted pod runs on until its node has stopped it)
        found = await _all_running(n1, "spread-", 6)
        return found if found and "n2" not in found else {}

    after = await poll(moved_off_n2, timeout=120)
    assert set(after) == {"n1", "n3"}, after  # evicted, and made again on the nodes that are not cordoned
    await asyncio.to_thread(api.patch_node, "n2", {"spec": {"unschedulable": False}})
    assert (await node_lines(n1))["n2"] == "Ready"


async def meshd(member: NodeMember, *args: str) -> tuple[int, str, str]:
    """The meshd CLI against a member's API."""
    env = {**os.environ, "MESHD_API": member.api, "MESHD_TOKEN": (member.state_dir / "token").read_text().strip()}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "meshd.cli", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_the_leader_deletes_expired_bootstrap_tokens(members: list[NodeMember]) -> None:
    n1 = members[0]
    code, out, err = await meshd(n1, "token", "create", "--ttl", "1s", "--description", "short")
    assert code == 0, err
    short = out.strip()
    code, out, err = await meshd(n1, "token", "create", "--ttl", "0", "--description", "forever")
    assert code == 0, err
    forever = out.strip()

    async def secrets() -> set[str]:
        code, out, err = await n1.kubectl("get", "secrets", "-n", "kube-system", "--no-headers")
        assert code == 0, err
        return {line.split()[0] for line in out.splitlines() if line.strip()}
    (leader,) = await poll(lambda: leaders(members))
    lead = next(m for m in members if m.name == leader)

    async def cleaned() -> bool:  # 1 s to expire, 1 s kept (--keep-expired-tokens 1)
        return f"bootstrap token {short[:6]} expired: deleted" in lead.log.read_text()
    assert await poll(cleaned, timeout=30)
    left = await secrets()
    assert f"bootstrap-token-{short[:6]}" not in left and f"bootstrap-token-{forever[:6]}" in left, left
    assert not any("expired: deleted" in m.log.read_text() for m in members if m is not lead)
