"""The agent's side of mutual TLS between nodes on a real etcd (Debian's etcd-server), each "agent" its own
connection to the store: two agents starting at once agree on one cluster CA; each issues its node certificate
and writes it for its sidecar (0600); its Node says where its gateway listens and which serials it holds; a
deleted Node's serials are revoked and every node's trust file says so; and Pod objects bound to another Ready
node (written as `kubectl get pod -o json` shows them) become endpoints through that node's gateway."""

from __future__ import annotations

import asyncio
import datetime
import json
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from meshd.cluster.meshcerts import NodeCertificates, ensure_ca
from meshd.cluster.nodes import NODE_LEASE_NAMESPACE, lease
from meshd.cluster.pki import MESH_PORT_ANNOTATION, REVOKED_CONFIGMAP, SERIALS_ANNOTATION, revoked_serials
from meshd.cluster.remote import RemoteEndpoints
from meshd.model.endpoints import PortInfo, ServiceInfo, ServiceKey
from meshd.registry import Registry
from meshd.store.etcd import EtcdObjectStore, open_etcd_store
from tests.integration.agent_harness import eventually
from tests.integration.etcd_harness import EtcdCluster


@pytest.fixture
async def stores(etcd: EtcdCluster) -> AsyncIterator[list[EtcdObjectStore]]:
    opened = [await open_etcd_store(etcd.endpoints) for _ in range(2)]
    yield opened
    for store in opened:
        await store.close()


def node(name: str, address: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"addresses": [{"type": "InternalIP", "address": address}]}}


def pod(name: str, node_name: str, ip: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
            "spec": {"nodeName": node_name, "containers": [{"name": "web", "image": "python:3",
                                                            "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip, "hostIP": "127.0.0.1",
                       "conditions": [{"type": "Ready", "status": "True"}]}}


async def test_two_agents_starting_at_once_agree_on_one_cluster_ca(stores: list[EtcdObjectStore]):
    first, second = await asyncio.gather(*(ensure_ca(store) for store in stores))
    assert first.cert == second.cert
    assert (await ensure_ca(stores[0])).cert == first.cert  # and it is kept


async def test_node_certificates_are_issued_annotated_and_revoked_with_their_node(
        stores: list[EtcdObjectStore], tmp_path: Path):
    for store, (name, address) in zip(stores, (("node-a", "127.0.0.1"), ("node-b", "127.0.0.2"))):
        await store.create(node(name, address))
    agents = [NodeCertificates(store, node_name=name, addresses=lambda a=address: [a], directory=tmp_path / name,
                               mesh_port=4143 + i)
              for i, (store, (name, address)) in enumerate(zip(stores, (("node-a", "127.0.0.1"),
                                                                     ("node-b", "127.0.0.2"))))]
    tasks = [asyncio.create_task(agent.run()) for agent in agents]
    try:
        def issued() -> bool:
            return all(a.cert is not None and (a.directory / "trust.json").exists() for a in agents)

        await eventually(issued, timeout=30)
        a, b = agents
        files = await asyncio.to_thread(lambda: {p.name: stat.S_IMODE(p.stat().st_mode)
                                                 for p in a.directory.iterdir() if not p.name.startswith(".")})
        assert files == {"ca.pem": 0o600, "node.pem": 0o600, "node-key.pem": 0o600, "trust.json": 0o600}
        ca = await ensure_ca(stores[0])
        a.cert.verify_directly_issued_by(ca.cert)  # type: ignore[union-attr]
        san = a.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value  # type: ignore[union-attr]
        assert san.get_values_for_type(x509.DNSName) == ["node-a"]

        def annotated() -> dict[str, str] | None:
            found = stores[0].get("Node", "", "node-b")
            notes = ((found or {}).get("metadata") or {}).get("annotations") or {}
            return notes if SERIALS_ANNOTATION in notes else None

        notes = await eventually(annotated, timeout=30)
        assert notes[MESH_PORT_ANNOTATION] == "4144"
        assert f"{b.cert.serial_number:x}@" in notes[SERIALS_ANNOTATION]  # type: ignore[union-attr]
        trust = json.loads(await asyncio.to_thread((a.directory / "trust.json").read_text))
        assert trust == {"revoked": [], "nodes": ["node-a", "node-b"]}

        tasks[1].cancel()  # node-b's agent is gone, and its Node deleted (kubectl delete node node-b)
        await stores[0].delete("Node", "", "node-b")

        def revoked() -> bool:
            listed = revoked_serials(stores[0].get("ConfigMap", "kube-system", REVOKED_CONFIGMAP))
            return b.cert.serial_number in listed  # type: ignore[union-attr]

        await eventually(revoked, timeout=30)

        wanted = {"nodes": ["node-a"], "revoked": [f"{b.cert.serial_number:x}"]}  # type: ignore[union-attr]
        for _ in range(300):
            trust = json.loads(await asyncio.to_thread((a.directory / "trust.json").read_text))
            if trust == wanted:
                break
            await asyncio.sleep(0.1)
        assert trust == wanted
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_pods_bound_to_another_ready_node_become_endpoints_through_its_gateway(
        stores: list[EtcdObjectStore]):
    store = stores[0]
    registry = Registry(node="node-a")
    key = ServiceKey("default", "web")
    registry.upsert_service(ServiceInfo(key, "10.96.0.10", (PortInfo("http", 80, "http"),)), {"app": "web"})
    remote = RemoteEndpoints(store, registry, own_node="node-a", grace=3.0)
    task = asyncio.create_task(remote.run())
    try:
        await stores[1].create({**node("node-b", "127.0.0.2"),
                                "metadata": {"name": "node-b", "annotations": {MESH_PORT_ANNOTATION: "4200"}}})
        await stores[1].create(lease(NODE_LEASE_NAMESPACE, "node-b", holder="node-b", duration=3,
                                     renewed=time.time()))
        await stores[1].create(pod("web-b", "node-b", "127.0.0.50"))
        await stores[1].create(pod("web-a", "node-a", "127.0.0.51"))  # this node's own: not a remote endpoint

        endpoints = await eventually(lambda: registry.endpoints(key), timeout=30)
        assert [(e.name, e.address, e.ports["http"], e.node, e.gateway) for e in endpoints] == [
            ("web-b", "127.0.0.50", 8080, "node-b", "127.0.0.2:4200")]
        # node-b stops renewing its lease: its endpoints leave at once, without any write to the store
        await eventually(lambda: not registry.endpoints(key), timeout=30)
        await stores[1].update(lease(NODE_LEASE_NAMESPACE, "node-b", holder="node-b", duration=3,
                                     renewed=time.time() + 30))
        await eventually(lambda: registry.endpoints(key), timeout=30)
        await stores[1].delete("Pod", "default", "web-b")
        await eventually(lambda: not registry.endpoints(key), timeout=30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)



async def test_a_short_lived_certificate_is_issued_again_at_two_thirds_of_its_life(
        stores: list[EtcdObjectStore], tmp_path: Path):
    await stores[0].create(node("node-a", "127.0.0.1"))
    agent = NodeCertificates(stores[0], node_name="node-a", addresses=lambda: ["127.0.0.1"],
                             directory=tmp_path / "mesh", mesh_port=4143, validity=datetime.timedelta(seconds=6))
    task = asyncio.create_task(agent.run())
    try:
        first = await eventually(lambda: agent.cert, timeout=30)
        second = await eventually(lambda: agent.cert if agent.cert.serial_number != first.serial_number else None,
                                  timeout=30)
        assert second.not_valid_before_utc >= first.not_valid_before_utc + datetime.timedelta(seconds=2)
        on_disk = x509.load_pem_x509_certificate(await asyncio.to_thread((tmp_path / "mesh" / "node.pem").read_bytes))
        assert on_disk.serial_number in {second.serial_number, agent.cert.serial_number}  # type: ignore[union-attr]
        await eventually(lambda: f"{second.serial_number:x}@" in
                         stores[0].get("Node", "", "node-a")["metadata"]["annotations"][SERIALS_ANNOTATION],  # type: ignore[index]
                         timeout=30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_joining_nodes_csr_is_signed_by_the_cluster_ca(stores: list[EtcdObjectStore]):
    from meshd.cluster.joinca import CsrError, make_key_and_csr
    from meshd.cluster.meshcerts import ClusterCaIssuer
    from meshd.model.nodeidentity import node_of
    from meshd.store import StoreError

    issuer = ClusterCaIssuer(stores[0])
    _, csr = make_key_and_csr("node-j")
    with pytest.raises(StoreError, match="not made yet"):
        await asyncio.to_thread(issuer, "node-j", csr)
    ca = await ensure_ca(stores[1])
    await eventually(lambda: stores[0].get("Secret", "kube-system", "meshd-cluster-ca"), timeout=30)
    ca_pem, cert_pem = await asyncio.to_thread(issuer, "node-j", csr)
    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(ca.cert)
    assert ca_pem == ca.cert_pem() and node_of(cert) == "node-j"
    with pytest.raises(CsrError):
        await asyncio.to_thread(issuer, "node-j", b"not a CSR")
