"""Two "nodes" on one machine for the mesh's tests and benchmark: node A's sidecar reaches node B's pods through
B's mesh gateway (mutual TLS, or plaintext for the comparison), each sidecar fed by its own fake agent, the
identities issued from one cluster CA (meshd.cluster.pki) and written as the agent writes them."""

from __future__ import annotations

import asyncio
import datetime
import random
from dataclasses import dataclass, field
from pathlib import Path

import fake_agent
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from harness import Process, free_port, start_sidecar, wait_port

from meshd.cluster.meshcerts import write_identity, write_trust
from meshd.cluster.pki import ClusterCA, issue_node_certificate, make_cluster_ca
from meshd.model.endpoints import Endpoint, PortInfo, ServiceInfo, ServiceKey


def loopback() -> str:
    return f"127.216.{random.randint(1, 254)}.{random.randint(2, 254)}"


def issue(ca: ClusterCA, node: str, *, addresses: tuple[str, ...] = ("127.0.0.1",),
          validity: datetime.timedelta = datetime.timedelta(hours=24),
          now: datetime.datetime | None = None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    return issue_node_certificate(ca, node, addresses, public_key=key.public_key(), validity=validity,
                                  now=now), key


def write_node(directory: Path, ca: ClusterCA, node: str, *, nodes: tuple[str, ...] = ("node-a", "node-b"),
               revoked: tuple[int, ...] = ()) -> x509.Certificate:
    cert, key = issue(ca, node)
    write_identity(directory, ca=ca.cert, cert=cert, key=key)
    write_trust(directory, revoked=revoked, nodes=nodes)
    return cert


@dataclass
class Node:
    name: str
    agent: fake_agent.FakeAgent
    sidecar: Process
    metrics: int
    mesh_dir: Path


@dataclass
class MeshPair:
    tmp: Path
    plaintext: bool = False
    ca: ClusterCA = field(default_factory=lambda: make_cluster_ca(datetime.datetime.now(datetime.UTC)))
    gateway_port: int = field(default_factory=free_port)
    nodes: dict[str, Node] = field(default_factory=dict)
    certs: dict[str, x509.Certificate] = field(default_factory=dict)

    @property
    def gateway(self) -> str:
        return f"127.0.0.1:{self.gateway_port}"

    async def start(self, *sidecar_args: str) -> MeshPair:
        for name, gateway in (("node-a", False), ("node-b", True)):
            directory = self.tmp / name / "mesh"
            self.certs[name] = await asyncio.to_thread(write_node, directory, self.ca, name)
            agent = fake_agent.FakeAgent(heartbeat=1.0)
            api = await agent.start()
            args = ["--mesh-plaintext"] if self.plaintext else ["--mesh-dir", str(directory)]
            if gateway:
                args += ["--mesh-listen", self.gateway]
            sidecar, mport = await start_sidecar(api, self.tmp / f"{name}-sidecar.log", *args, *sidecar_args)
            self.nodes[name] = Node(name, agent, sidecar, mport, directory)
        await wait_port(self.gateway_port)
        return self

    def serve(self, name: str, port: int, pod_port: int, *, port_name: str = "http",
              pod_address: str = "127.0.0.1", protocol: str = "TCP") -> str:
        """A Service `name` whose one endpoint is a pod of node B at pod_address:pod_port: B's agent knows it
        as local, A's as remote through B's gateway. Returns the Service's address on node A."""
        address = loopback()
        key = ServiceKey("default", name)
        ports = (PortInfo(port_name, port, port, protocol),)
        self.nodes["node-a"].agent.set_service(ServiceInfo(key, address, ports, {}), [Endpoint(
            name=f"{name}-0", address=pod_address, ports={port_name: pod_port}, node="node-b",
            gateway=self.gateway)])
        self.nodes["node-b"].agent.set_service(ServiceInfo(key, loopback(), ports, {}), [Endpoint(
            name=f"{name}-0", address=pod_address, ports={port_name: pod_port}, node="node-b")])
        return address

    async def stop(self) -> dict[str, int]:
        codes = {}
        for name, node in self.nodes.items():
            codes[name] = await node.sidecar.stop()
            await node.agent.stop()
        return codes
