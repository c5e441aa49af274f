"""Two real `meshd agent --store etcd://...` processes (process driver, each with its node sidecar) on one
etcd: node B runs a pod; its Pod object in the store (bound to node-b, as the leader's pod placement writes
it) makes it an endpoint on node A through B's mesh gateway; curl to the Service on node A reaches the pod on
node B over mutual TLS, with the certificates the agents issued themselves from the one cluster CA; B's gateway
refuses a certificate of its own cluster CA that expired, and the one of a node deleted from the store."""

from __future__ import annotations

import asyncio
import datetime
import json
import shlex
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from meshd.cluster.pki import ca_from_secret, issue_node_certificate, key_pem
from meshd.store.etcd import open_etcd_store
from tests.integration.agent_harness import free_port
from tests.integration.etcd_harness import EtcdCluster
from tests.integration.test_cluster_etcd import Member, poll

pytestmark = pytest.mark.slow

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: web-b, labels: {app: web}}
spec:
  nodeName: node-b
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: python
    command: ["sh", "-c", "exec PYTHON -u -m http.server --directory SITE --bind $POD_IP 8080"]
    ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
""".replace("PYTHON", sys.executable)


class MeshMember(Member):
    def __init__(self, directory: Path, name: str, store: str) -> None:
        super().__init__(directory, name, store)
        self.mesh_port = free_port()

    def command(self) -> list[str]:
        return [a for a in super().command() if a != "--no-sidecar"] + ["--mesh-port", str(self.mesh_port)]


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(tmp_path / "etcd").start()
    yield cluster
    cluster.stop()


@pytest.fixture
async def nodes(tmp_path: Path, etcd: EtcdCluster) -> AsyncIterator[dict[str, MeshMember]]:
    started: dict[str, MeshMember] = {}
    try:
        for name in ("node-b", "node-a"):  # node-b first: it leads, and so runs the pod
            member = MeshMember(tmp_path / name, name, etcd.url)
            await member.start()
            started[name] = member
            if name == "node-b":
                assert await poll(lambda m=member: _leading(m))
        yield started
    finally:
        if "node-b" in started and started["node-b"].proc is not None:
            await started["node-b"].request("DELETE", "/api/v1/namespaces/default/pods/web-b")
            await asyncio.sleep(2)
        await asyncio.gather(*(m.stop() for m in started.values()))
        for member in started.values():
            log = await asyncio.to_thread(member.log.read_text)
            assert "Traceback" not in log, log[-3000:]


async def _leading(member: Member) -> bool:
    return await member.metric("meshd_leader") == 1


async def run(*command: str, stdin: bytes = b"", timeout: float = 30) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(stdin), timeout)
    return proc.returncode or 0, out.decode(errors="replace")


async def test_a_pod_on_node_b_answers_through_node_as_sidecar_over_mutual_tls(nodes: dict[str, MeshMember],
                                                                              etcd: EtcdCluster, tmp_path: Path):
    a, b = nodes["node-a"], nodes["node-b"]
    manifest, site = tmp_path / "web.yaml", tmp_path / "site"
    await asyncio.to_thread(site.mkdir)
    await asyncio.to_thread((site / "index.html").write_text, "hello from node B\n")
    await asyncio.to_thread(manifest.write_text, POD.replace("SITE", str(site)))
    code, out, err = await b.kubectl("apply", "-f", str(manifest))
    assert code == 0, err

    async def running() -> dict[str, Any] | None:
        status, body = await b.request("GET", "/api/v1/namespaces/default/pods/web-b")
        ready = status == 200 and any(c.get("type") == "Ready" and c.get("status") == "True"
                                      for c in body.get("status", {}).get("conditions") or [])
        return body if ready and body["status"].get("podIP") else None

    pod = await poll(running, timeout=60)
    store = await open_etcd_store(etcd.endpoints)
    try:  # the pod's status in the store, as node-b's agent writes it once pods are placed by the scheduler
        current = store.get("Pod", "default", "web-b")
        assert current is not None
        await store.update({**current, "status": {
            "phase": "Running", "podIP": pod["status"]["podIP"], "hostIP": "127.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}]}})

        code, out, err = await a.kubectl("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")
        assert code == 0 and out, err
        address = out.strip()

        async def answered() -> str | None:
            code, text = await run("curl", "-sS", "--max-time", "5", f"http://{address}/")
            return text if code == 0 and "hello from node B" in text else None

        assert await poll(answered, timeout=60)
        sidecar_log = await asyncio.to_thread((a.state_dir / "sidecar.log").read_text)
        assert "mesh identity: certificate" in sidecar_log, sidecar_log[-2000:]

        # B's gateway, as any peer sees it: node A's own certificate is let through, an expired one is not
        ca = ca_from_secret(store.get("Secret", "kube-system", "meshd-cluster-ca"))  # type: ignore[arg-type]
        gateway = f"127.0.0.1:{b.mesh_port}"
        line = f"CONNECT {pod['status']['podIP']}:8080\n"
        mesh_a = a.state_dir / "mesh"
        assert "OK" in (await s_client(gateway, mesh_a / "ca.pem", mesh_a / "node.pem", mesh_a / "node-key.pem",
                                       line)).splitlines()
        key = ec.generate_private_key(ec.SECP256R1())
        expired = issue_node_certificate(ca, "node-a", ["127.0.0.1"], public_key=key.public_key(),
                                         validity=datetime.timedelta(hours=1),
                                         now=datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2))
        cert_file, key_file = await asyncio.to_thread(_write, tmp_path / "expired", expired, key)
        assert "OK" not in (await s_client(gateway, mesh_a / "ca.pem", cert_file, key_file, line)).splitlines()

        # a node deleted: its certificate is revoked, B's gateway refuses it
        old = await asyncio.to_thread(_copy, mesh_a, tmp_path / "old")  # node A's agent replaces it once revoked
        serial = x509.load_pem_x509_certificate(await asyncio.to_thread(old[0].read_bytes)).serial_number
        await store.delete("Node", "", "node-a")  # (the API does not delete Nodes yet: straight in the store)

        async def revoked() -> bool:
            trust = json.loads(await asyncio.to_thread((b.state_dir / "mesh" / "trust.json").read_text))
            return f"{serial:x}" in trust["revoked"]

        assert await poll(revoked, timeout=30)
        await asyncio.sleep(2)  # the sidecar reloads the trust file (polled each second)
        assert "OK" not in (await s_client(gateway, mesh_a / "ca.pem", *old, line)).splitlines()
    finally:
        await store.close()


def _write(directory: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "node.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "node-key.pem").write_bytes(key_pem(key))
    return directory / "node.pem", directory / "node-key.pem"


def _copy(mesh: Path, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("node.pem", "node-key.pem"):
        (directory / name).write_bytes((mesh / name).read_bytes())
    return directory / "node.pem", directory / "node-key.pem"


async def s_client(gateway: str, ca: Path, cert: Path, key: Path, line: str) -> str:
    command = ["openssl", "s_client", "-connect", gateway, "-tls1_3", "-alpn", "meshd/1", "-CAfile", str(ca),
               "-cert", str(cert), "-key", str(key), "-quiet", "-no_ign_eof"]
    script = f"(printf '%s' {shlex.quote(line)}; sleep 1) | {shlex.join(command)}"
    _, out = await run("sh", "-c", script)
    return out

