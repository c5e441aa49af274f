"""Services in a cluster, with a real etcd (Debian's etcd-server) and two `meshd agent --store etcd://...`
processes (process driver, each its own API, DNS and mDNS on 127.0.0.1): a Service applied through one agent has
the same address read through the other and in both agents' DNS answers (dig); a clusterIP another Service holds
is refused; two agents racing for one address through etcd get it once; and DNS-SD advertises the Service once
for the cluster, from the leader, with the serving nodes in TXT, handing over when the leader stops."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from meshd.controller.clusterip import AddressPlan, is_address_race
from meshd.manifests.loader import load_documents
from meshd.store import AlreadyExists
from meshd.store.etcd import open_etcd_store
from tests.integration.etcd_harness import EtcdCluster
from tests.integration.test_cluster_etcd import Member, leaders, poll
from tests.integration.test_mdns_zeroconf import BROWSER

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

NAME = f"svcaddr-{os.getpid()}"  # the machine's mDNS on 127.0.0.1 is shared: a name no other test advertises
INSTANCE = f"{NAME}@default._http._tcp.local."


class Node(Member):
    def command(self) -> list[str]:
        return [*super().command(), "--mdns", "127.0.0.1"]  # the last --mdns wins

    async def dig(self, name: str) -> list[str]:
        proc = await asyncio.create_subprocess_exec(
            "dig", "+short", "+time=2", "+tries=1", "-p", str(self.dns_port), "@127.0.0.1", name,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        return sorted(out.decode().split()) if proc.returncode == 0 else []

    async def cluster_ip(self, name: str) -> str | None:
        status, body = await self.request("GET", f"/api/v1/namespaces/default/services/{name}")
        return body["spec"].get("clusterIP") if status == 200 else None


def service(name: str, cluster_ip: str | None = None) -> str:
    address = f"\n  clusterIP: {cluster_ip}" if cluster_ip else ""
    return (f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: {NAME}}}{address}\n"
            "  ports:\n  - {name: http, port: 80, targetPort: http}\n")


DEPLOYMENT = f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {NAME}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {NAME}}}}}
  template:
    metadata: {{labels: {{app: {NAME}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        command: [sleep, "3600"]
        ports: [{{containerPort: 8080, name: http}}]
"""


@pytest.fixture
async def nodes(tmp_path: Path, etcd: EtcdCluster) -> AsyncIterator[list[Node]]:
    started = [Node(tmp_path / name, name, etcd.url) for name in ("a", "b")]
    try:
        await asyncio.gather(*(n.start() for n in started))
        yield started
    finally:
        try:  # the Deployment goes first (else its pods come back), then every agent's pods with it
            live = [n for n in started if n.proc is not None and n.proc.returncode is None]
            if live:
                await live[0].request("DELETE", f"/apis/apps/v1/namespaces/default/deployments/{NAME}")
            for node in live:
                await poll(lambda n=node: _no_pods(n), timeout=60)
        except Exception as error:  # noqa: BLE001 - whatever happened, every agent is stopped below
            print(f"cleaning up: {error!r}")
        await asyncio.gather(*(n.stop() for n in started))


async def _no_pods(node: Node) -> bool:
    return not await node.items("pods")


async def test_one_address_for_a_service_on_every_agent_and_in_every_dns(nodes: list[Node]) -> None:
    a, b = nodes
    assert (await a.request("POST", "/v1/apply", service(NAME)))[0] == 200
    address = await poll(lambda: a.cluster_ip(NAME))
    assert await poll(lambda: b.cluster_ip(NAME)) == address  # read through the other agent
    fqdn = f"{NAME}.default.svc.cluster.local"
    for node in (a, b):
        assert await poll(lambda n=node: _answers(n, fqdn, [address])) == [address]

    # a second Service through the other agent gets another address, the same through both
    assert (await b.request("POST", "/v1/apply", service(NAME + "-2")))[0] == 200
    second = await poll(lambda: b.cluster_ip(NAME + "-2"))
    assert second != address and await poll(lambda: a.cluster_ip(NAME + "-2")) == second

    # the address another Service holds is refused, as the API server refuses it
    (a.directory / "taken.yaml").write_text(service(NAME + "-3", address))
    code, _, err = await a.kubectl("apply", "-f", str(a.directory / "taken.yaml"))
    assert code != 0 and "provided IP is already allocated" in err, err
    assert "spec.clusterIP" in err
    assert await b.cluster_ip(NAME + "-3") is None

    # applied again through the other agent, the Service keeps its address; another one is refused
    assert (await b.request("POST", "/v1/apply", service(NAME)))[0] == 200
    assert await a.cluster_ip(NAME) == address
    (b.directory / "moved.yaml").write_text(service(NAME, second))
    code, _, err = await b.kubectl("apply", "-f", str(b.directory / "moved.yaml"))
    assert code != 0 and "field is immutable" in err, err

    # the address is in the stored object: a restarted agent serves the same one
    await b.stop()
    await b.start()
    assert await poll(lambda: _answers(b, fqdn, [address])) == [address]


async def _answers(node: Node, name: str, expected: list[str]) -> list[str] | None:
    answer = await node.dig(name)
    return answer if answer == expected else None


async def test_two_writers_racing_for_one_address_through_etcd_get_it_once(etcd: EtcdCluster) -> None:
    """Each agent's store sees no holder yet and chooses the same address; etcd lets one IPAddress through."""
    import ipaddress

    stores = [await open_etcd_store(etcd.endpoints) for _ in range(2)]
    try:
        pool = ipaddress.IPv4Network("127.64.0.0/16")
        plans = [AddressPlan(store, pool) for store in stores]
        chosen = []
        for plan, name in zip(plans, ("first", "second")):
            (obj,) = load_documents(service(name, "127.64.7.7")).objects
            chosen.append(plan.assign(obj, current=None).cluster_ip)
        assert chosen == ["127.64.7.7", "127.64.7.7"]
        results = await asyncio.gather(*(s.transaction(p.operations()) for s, p in zip(stores, plans)),
                                       return_exceptions=True)
        refused = [r for r in results if isinstance(r, Exception)]
        assert len(refused) == 1 and isinstance(refused[0], AlreadyExists) and is_address_race(refused[0])
        again = AddressPlan(stores[0], pool)  # the loser's next look sees it taken
        (obj,) = load_documents(service("third", "127.64.7.7")).objects
        with pytest.raises(ValueError, match="provided IP is already allocated"):
            again.assign(obj, current=None)
    finally:
        for store in stores:
            await store.close()


class Adverts:
    """What a zeroconf browser in another process sees of this test's Service: instance name -> TXT."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.live: dict[str, dict[str, Any]] = {}
        self.ready = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            event = json.loads(line)
            name = event.get("name") or ""
            if event["event"] == "ready":
                self.ready.set()
            elif not name.startswith(f"{NAME}@"):
                continue
            elif event["event"] == "removed":
                self.live.pop(name, None)
            elif event["event"] in ("added", "updated"):
                self.live[name] = event["properties"]

    def only_from(self, node: str) -> bool:
        return list(self.live) == [INSTANCE] and self.live[INSTANCE].get("node") == node


@pytest.fixture
async def adverts() -> AsyncIterator[Adverts]:
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", BROWSER, "_http._tcp.local.",
                                                   stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    seen = Adverts(process)
    await asyncio.wait_for(seen.ready.wait(), 30)
    yield seen
    assert process.stdin is not None
    process.stdin.close()
    try:
        await asyncio.wait_for(process.wait(), 10)
    except TimeoutError:
        process.kill()
        await process.wait()
    seen.task.cancel()


async def test_dns_sd_advertises_a_service_once_for_the_cluster_from_the_leader(nodes: list[Node],
                                                                                adverts: Adverts) -> None:
    by_name = {n.name: n for n in nodes}
    (leader,) = await poll(lambda: leaders(nodes))
    assert (await by_name[leader].request("POST", "/v1/apply", service(NAME) + "---\n" + DEPLOYMENT))[0] == 200

    async def advertised_by(node: str) -> bool:
        return adverts.only_from(node)
    assert await poll(lambda: advertised_by(leader))
    assert set(adverts.live[INSTANCE]["nodes"].split(",")) <= {"a", "b"}
    counts = {n.name: await n.metric("meshd_mdns_services") for n in nodes}
    assert counts[leader] == 1 and all(not v for k, v in counts.items() if k != leader), counts

    # the leader stops: the other agent leads and advertises (the old one said goodbye)
    await by_name[leader].stop()
    other = next(n.name for n in nodes if n.name != leader)
    assert await poll(lambda: leaders([by_name[other]])) == [other]
    assert await poll(lambda: advertised_by(other), timeout=90)
    assert await by_name[other].metric("meshd_mdns_services") == 1
    await by_name[leader].start()  # its pods still run (a stopped agent leaves them): it stops them on cleanup
