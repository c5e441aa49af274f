"""Three `meshd agent --store etcd://...` processes (process driver, each its own state dir and ports) on one
real etcd (Debian's etcd-server), driven with the real kubectl: every node is listed Ready, an object applied
through one agent is seen through the others, a killed agent's node turns NotReady within the grace, killing
the leader moves leadership, two agents racing to update one object give one 409, and etcd going away leaves
running pods running while the agents report it, until they reconnect."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from meshd.cluster.nodes import parse_time
from tests.integration.agent_harness import eventually
from tests.integration.etcd_harness import EtcdCluster
from tests.integration.test_kubectl import write_kubeconfig
from tests.integration.test_store_agent import AgentProcess

pytestmark = pytest.mark.slow

GRACE, TTL = 3, 3


KEPT = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: shared-reader}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list]}]
"""


class Member(AgentProcess):
    def __init__(self, directory: Path, name: str, store: str) -> None:
        super().__init__(directory / "state", directory / "agent.log")
        self.name, self.store, self.directory = name, store, directory
        self.kubeconfig = directory / "kubeconfig"
        directory.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [*super().command(), "--store", self.store, "--node-name", self.name,
                "--node-grace", str(GRACE), "--leader-ttl", str(TTL)]

    async def start(self) -> None:
        await super().start()
        await write_kubeconfig(self.api, str(self.state_dir), self.kubeconfig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)

    async def kubectl(self, *args: str) -> tuple[int, str, str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.directory)}
        proc = await asyncio.create_subprocess_exec("kubectl", *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode(), err.decode()

    async def metric(self, name: str) -> float | None:
        try:
            async with aiohttp.ClientSession() as http, http.get(self.api + "/metrics") as response:
                text = await response.text()
        except aiohttp.ClientError:
            return None
        found = re.search(rf"^{name} (\S+)$", text, re.M)
        return float(found.group(1)) if found else None

    async def healthz(self) -> tuple[int, str]:
        async with aiohttp.ClientSession() as http, http.get(self.api + "/healthz") as response:
            return response.status, await response.text()


@pytest.fixture
async def members(tmp_path: Path, etcd: EtcdCluster) -> AsyncIterator[list[Member]]:
    started = [Member(tmp_path / name, name, etcd.url) for name in ("n1", "n2", "n3")]
    try:
        await asyncio.gather(*(m.start() for m in started))
        yield started
    finally:
        await asyncio.to_thread(etcd.wait_healthy)  # a test that stopped etcd started it again
        await _delete_owners(started)
        for member in started:
            try:
                if member.proc is not None and member.proc.returncode is None:
                    for name in (await member.items("pods")):  # stop what it runs (SIGTERM leaves pods running)
                        await member.request("DELETE", f"/api/v1/namespaces/default/pods/{name}")
                    await eventually(lambda m=member: _no_pods(m), timeout=60)
            except Exception as error:  # noqa: BLE001 - whatever happened, every agent is stopped below
                print(f"cleaning up {member.name}: {error!r}")
        await asyncio.gather(*(m.stop() for m in started))


OWNERS = ("/apis/apps/v1/namespaces/default/deployments", "/apis/apps/v1/namespaces/default/replicasets",
          "/apis/apps/v1/namespaces/default/statefulsets", "/apis/apps/v1/namespaces/default/daemonsets",
          "/apis/batch/v1/namespaces/default/jobs")


async def _delete_owners(members: list[Member]) -> None:
    """What a test left that makes pods goes first (once: the store is shared), or the pods the teardown deletes
    come back and it waits for nothing until its timeout (three minutes, one per agent)."""
    for member in [m for m in members if m.proc is not None and m.proc.returncode is None][:1]:
        try:
            for path in OWNERS:
                status, body = await member.request("GET", path)
                for item in body.get("items", []) if status == 200 else []:
                    await member.request("DELETE", f"{path}/{item['metadata']['name']}")
        except Exception as error:  # noqa: BLE001 - the pods are deleted one by one below all the same
            print(f"cleaning up owners through {member.name}: {error!r}")


def _no_pods(member: Member) -> bool:
    from tests.integration.test_store_agent import _no_pods as none_left

    return none_left(member)


async def node_status(member: Member) -> dict[str, str]:
    code, out, err = await member.kubectl("get", "nodes", "--no-headers")
    assert code == 0, err
    return {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}


async def leaders(members: list[Member]) -> list[str]:
    values = [(m.name, await m.metric("meshd_leader")) for m in members if m.proc and m.proc.returncode is None]
    return [name for name, value in values if value == 1]


async def poll(check: Any, timeout: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    value = None
    while asyncio.get_running_loop().time() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {value!r}")


SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: shared}
spec:
  selector: {app: shared}
  ports:
  - {name: http, port: 80, targetPort: 8080}
"""


async def test_agents_share_objects_nodes_and_one_leader(members: list[Member]) -> None:
    n1, n2, n3 = members
    assert await poll(lambda: _all_ready(n1, {"n1", "n2", "n3"}))
    (n2.directory / "svc.yaml").write_text(SERVICE)
    code, out, err = await n2.kubectl("apply", "-f", str(n2.directory / "svc.yaml"))
    assert code == 0, err
    for member in (n1, n3):
        async def seen(m: Member = member) -> bool:
            code, out, _ = await m.kubectl("get", "service", "shared", "-o", "json")
            return code == 0 and json.loads(out)["metadata"]["name"] == "shared"
        assert await poll(seen)
    # a kind meshd keeps without acting on it (meshd.model.kept) is shared the same way
    (n2.directory / "kept.yaml").write_text(KEPT)
    code, out, err = await n2.kubectl("apply", "-f", str(n2.directory / "kept.yaml"))
    assert code == 0 and "Warning: meshd does not authorize by RBAC" in err, (out, err)

    async def rules(m: Member = n3) -> str:
        code, out, _ = await m.kubectl("get", "clusterrole", "shared-reader", "-o", "jsonpath={.rules[0].verbs}")
        return out if code == 0 else ""
    assert await poll(rules) == '["get","list"]'
    code, out, err = await n3.kubectl("get", "leases", "-n", "kube-node-lease", "--no-headers")
    assert code == 0, err
    assert sorted(line.split()[:2] for line in out.splitlines()) == [["n1", "n1"], ["n2", "n2"], ["n3", "n3"]]
    leader = (await poll(lambda: leaders(members)))
    assert len(leader) == 1, leader

    async def lease_holder() -> str:
        code, out, _ = await n1.kubectl("get", "lease", "-n", "kube-system", "meshd-controller", "-o",
                                        "jsonpath={.spec.holderIdentity}")
        return out if code == 0 else ""
    assert await poll(lease_holder) == leader[0]

    # two agents racing to update one object with the version both read: one wins, one gets 409 Conflict
    assert (await n2.request("POST", "/v1/apply", IDLE))[0] == 200
    path = "/apis/apps/v1/namespaces/default/deployments/idle"
    await poll(lambda: _rolled_out(n1, path))  # the leader's status write done (it changes the resourceVersion)
    status, body = await n1.request("GET", path)
    assert status == 200
    await poll(lambda: _has_version(n3, path, body["metadata"]["resourceVersion"]))
    first, second = (json.loads(json.dumps(body)) for _ in range(2))
    first["metadata"]["labels"], second["metadata"]["labels"] = {"by": "n1"}, {"by": "n3"}
    results = await asyncio.gather(n1.request("PUT", path, json.dumps(first)),
                                   n3.request("PUT", path, json.dumps(second)))
    assert sorted(code for code, _ in results) == [200, 409], [b.get("message") for _, b in results]
    assert next(b for c, b in results if c == 409)["reason"] == "Conflict"


async def _all_ready(member: Member, names: set[str]) -> bool:
    status = await node_status(member)
    return set(status) == names and all(s == "Ready" for s in status.values())


async def _has_version(member: Member, path: str, version: str) -> bool:
    status, body = await member.request("GET", path)
    return status == 200 and body["metadata"]["resourceVersion"] == version


async def _exists(member: Member, path: str) -> bool:
    return (await member.request("GET", path))[0] == 200


async def _rolled_out(member: Member, path: str) -> bool:
    status, body = await member.request("GET", path)
    return status == 200 and any(c.get("reason") == "NewReplicaSetAvailable"
                                 for c in body["status"].get("conditions", []))


IDLE = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: idle}
spec:
  replicas: 0
  selector: {matchLabels: {app: idle}}
  template:
    metadata: {labels: {app: idle}}
    spec:
      containers:
      - {name: main, image: busybox, command: [sleep, "3600"]}
"""


async def test_a_killed_agent_goes_notready_and_a_killed_leader_is_replaced(members: list[Member]) -> None:
    by_name = {m.name: m for m in members}
    await poll(lambda: _all_ready(members[0], {"n1", "n2", "n3"}))
    (leader,) = await poll(lambda: leaders(members))
    follower = next(m for m in members if m.name != leader)
    follower.kill()

    async def not_ready() -> bool:
        status = await node_status(by_name[leader])
        return status.get(follower.name) == "NotReady" and list(status.values()).count("Ready") == 2
    assert await poll(not_ready)
    code, out, _ = await by_name[leader].kubectl("get", "node", follower.name, "-o",
                                                 "jsonpath={.status.conditions[?(@.type=='Ready')].message}")
    assert "stopped renewing its lease" in out

    by_name[leader].kill()
    survivor = next(m for m in members if m.name not in (leader, follower.name))
    assert await poll(lambda: leaders([survivor])) == [survivor.name]

    async def lease_names_survivor() -> bool:
        code, out, _ = await survivor.kubectl("get", "lease", "-n", "kube-system", "meshd-controller", "-o",
                                              "jsonpath={.spec.holderIdentity} {.spec.leaseTransitions}")
        holder, _, transitions = out.partition(" ")
        return code == 0 and holder == survivor.name and int(transitions or 0) >= 1
    assert await poll(lease_names_survivor)


BARE_POD = """\
apiVersion: v1
kind: Pod
metadata: {name: keeps-running}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
"""


async def test_etcd_going_away_leaves_pods_running_and_the_agents_reconnect(members: list[Member],
                                                                          etcd: EtcdCluster) -> None:
    (leader,) = await poll(lambda: leaders(members))
    lead = next(m for m in members if m.name == leader)
    assert (await lead.request("POST", "/v1/apply", BARE_POD))[0] == 200

    async def running() -> bool:
        pods = await lead.items("pods")
        return pods.get("keeps-running", {}).get("status", {}).get("phase") == "Running"
    assert await poll(running)
    await asyncio.to_thread(etcd.stop)
    try:
        for member in members:
            async def reported(m: Member = member) -> bool:
                code, text = await m.healthz()
                return code == 503 and "store" in text and await m.metric("meshd_store_up") == 0
            assert await poll(reported)
        status, body = await lead.request("POST", "/v1/apply", SERVICE)
        assert status >= 500, body  # a write is refused whole, not half-done
        assert await running()  # the pod runs on, and stays listed

        async def event() -> bool:
            code, out, _ = await lead.kubectl("get", "events", "--field-selector", "reason=StoreUnreachable",
                                              "--no-headers")
            return code == 0 and "StoreUnreachable" in out
        assert await poll(event)
    finally:
        await asyncio.to_thread(etcd.restart, etcd.members[0])
    for member in members:
        async def healthy(m: Member = member) -> bool:
            return (await m.healthz())[0] == 200 and await m.metric("meshd_store_up") == 1
        assert await poll(healthy)
    assert (await lead.request("POST", "/v1/apply", SERVICE))[0] == 200
    assert await running()
    assert len(await poll(lambda: leaders(members))) == 1


async def test_losing_one_of_three_etcd_members_changes_nothing(tmp_path: Path) -> None:
    etcd = await asyncio.to_thread(lambda: EtcdCluster(tmp_path / "etcd3", size=3).start())
    pair = [Member(tmp_path / name, name, etcd.url) for name in ("m1", "m2")]
    try:
        await asyncio.gather(*(m.start() for m in pair))
        await poll(lambda: _all_ready(pair[0], {"m1", "m2"}))
        await asyncio.to_thread(etcd.members[0].stop)  # the member both agents name first
        assert (await pair[1].request("POST", "/v1/apply", IDLE))[0] == 200
        assert await poll(lambda: _exists(pair[0], "/apis/apps/v1/namespaces/default/deployments/idle"))
        stopped = time.time()

        async def renewed_since() -> bool:  # the heartbeats went on through the other members
            code, out, _ = await pair[0].kubectl("get", "leases", "-n", "kube-node-lease", "-o", "json")
            times = [parse_time(item["spec"]["renewTime"]) for item in json.loads(out)["items"]] if code == 0 else []
            return len(times) == 2 and all(t is not None and t > stopped for t in times)
        assert await poll(renewed_since)
        assert all([(await m.healthz())[0] == 200 for m in pair])
        assert len(await poll(lambda: leaders(pair))) == 1
    finally:
        await asyncio.gather(*(m.stop() for m in pair))
        await asyncio.to_thread(etcd.stop)
