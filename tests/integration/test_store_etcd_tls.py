"""meshd on a real etcd (Debian's etcd-server) that speaks only TLS and asks every client for a certificate
(`--cert-file --key-file --client-cert-auth --trusted-ca-file`, certificates made by openssl as the README
makes them):
- the store client reads, writes and watches over https:// with the CA and the client certificate;
- a client with no certificate, a certificate of another CA, the wrong CA, a key of another certificate,
  http:// to this etcd, TLS to a plain etcd: each refused with its one-line reason;
- `meshd agent` given a wrong CA (or http://) exits 1 with that line and starts nothing (no state dir);
- an agent on it runs a Deployment applied with kubectl, and a second agent that gets only `--join TOKEN
  --server` receives etcd's CA and the client certificate in the join answer (0600 in its state dir), reaches
  etcd with them, and its node is Ready."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from meshd.store.etcd import EtcdObjectStore, open_etcd_store, store_problem
from meshd.store.etcdtls import StoreTls, client_context, handshake_reason
from tests.integration.agent_harness import free_port
from tests.integration.etcd_harness import EtcdCluster, EtcdPki
from tests.integration.test_cluster_etcd import node_status, poll
from tests.integration.test_cluster_pods import PodMember, kill_pods, running_pods

ROOT = Path(__file__).resolve().parents[2]

CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "over-tls", "namespace": "default"},
             "data": {"secret": "only over TLS"}}

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: tls-web}
spec:
  replicas: 2
  selector: {matchLabels: {app: tls-web}}
  template:
    metadata: {labels: {app: tls-web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: busybox, command: [sleep, "3600"]}
"""


def tls_of(pki: EtcdPki, ca: str = "ca.crt", cert: str | None = "client.crt", key: str | None = "client.key"
           ) -> StoreTls:
    return StoreTls(pki.path(ca), pki.path(cert) if cert else None, pki.path(key) if key else None)


async def open_tls(etcd: EtcdCluster, tls: StoreTls) -> EtcdObjectStore:
    context = await asyncio.to_thread(client_context, tls)
    return await open_etcd_store(etcd.endpoints, ssl_context=context, tls=tls)


async def test_the_store_reads_writes_and_watches_over_tls_with_a_client_certificate(etcd_tls: EtcdCluster) -> None:
    assert etcd_tls.tls is not None and all(e.startswith("https://") for e in etcd_tls.endpoints)
    tls = tls_of(etcd_tls.tls)
    writer, reader = await open_tls(etcd_tls, tls), await open_tls(etcd_tls, tls)
    try:
        created = await writer.create(CONFIGMAP)
        # the other client's watch (a long-lived https stream) brings it
        seen = await poll(lambda: asyncio.sleep(0, reader.get("ConfigMap", "default", "over-tls")), timeout=30)
        assert seen["data"] == CONFIGMAP["data"]
        assert seen["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
        assert reader.reachable and not reader.last_error
    finally:
        await writer.close()
        await reader.close()


async def test_each_tls_disagreement_is_refused_with_its_one_line_reason(tmp_path: Path,
                                                                         etcd_tls: EtcdCluster) -> None:
    pki = etcd_tls.tls
    assert pki is not None
    other = EtcdPki.make(tmp_path / "other-pki")  # another CA, with its own client certificate
    https, port = etcd_tls.url, etcd_tls.members[0].client_port
    cases = [
        (https, tls_of(pki, cert=None, key=None), "etcd asks for a client certificate (--client-cert-auth) and "
                                                  "none was given: pass --store-cert FILE --store-key FILE"),
        (https, StoreTls(pki.path("ca.crt"), other.path("client.crt"), other.path("client.key")),
         "etcd refused the client certificate --store-cert " + other.path("client.crt")),
        (https, StoreTls(other.path("ca.crt"), pki.path("client.crt"), pki.path("client.key")),
         f"etcd's certificate does not verify against --store-ca {other.path('ca.crt')}"),
        (https, tls_of(pki, key="server.key"), f"--store-key {pki.path('server.key')} is not the key of "
                                               f"--store-cert {pki.path('client.crt')}"),
        (https, tls_of(pki, key=None), "--store-cert without --store-key"),
        (https, StoreTls(str(tmp_path / "missing.crt")), f"--store-ca {tmp_path / 'missing.crt'}: no such file"),
        (f"http://127.0.0.1:{port}", StoreTls(), f"http://127.0.0.1:{port} serves TLS but --store says http://"),
        (f"etcd://127.0.0.1:{port}", StoreTls(), f"http://127.0.0.1:{port} serves TLS but --store says http://"),
        (f"http://127.0.0.1:{port}", tls_of(pki), "is plain http:// but TLS files were given"),
    ]
    for url, tls, expected in cases:
        problem = await store_problem(url, tls)
        assert problem is not None and expected in problem, (url, tls, problem)
        assert "\n" not in problem
    assert await store_problem(https, tls_of(pki)) is None


async def test_a_refused_certificate_is_named_every_time_though_tls_13_reports_it_late(tmp_path: Path,
                                                                                    etcd_tls: EtcdCluster) -> None:
    """Under TLS 1.3 etcd checks the client's certificate after the client's handshake is done: a request sent at
    once often meets a reset rather than the alert (this test's cases failed 6 times in 40 so). The handshake
    probe reads the alert itself."""
    pki = etcd_tls.tls
    assert pki is not None
    other = EtcdPki.make(tmp_path / "other-pki")
    refused = StoreTls(pki.path("ca.crt"), other.path("client.crt"), other.path("client.key"))
    for _ in range(10):
        problem = await store_problem(etcd_tls.url, refused)
        assert problem is not None and "etcd refused the client certificate" in problem, problem
        context = await asyncio.to_thread(client_context, refused)
        assert "etcd refused the client certificate" in str(
            await asyncio.to_thread(handshake_reason, etcd_tls.url, context, refused))
    accepted = tls_of(pki)
    context = await asyncio.to_thread(client_context, accepted)
    assert await asyncio.to_thread(handshake_reason, etcd_tls.url, context, accepted, 0.5) is None


async def test_tls_towards_a_plain_etcd_is_refused(etcd: EtcdCluster, tmp_path: Path) -> None:
    pki = EtcdPki.make(tmp_path / "pki")
    url = "https://" + etcd.members[0].endpoint
    problem = await store_problem(url, tls_of(pki))
    assert problem == (f"{url} does not speak TLS (a plain-HTTP etcd?): use --store http://… or start etcd with "
                       "--cert-file and --key-file"), problem


@pytest.mark.parametrize("wrong", ["ca", "scheme"])
def test_the_agent_exits_1_with_the_reason_and_starts_nothing(tmp_path: Path, etcd_tls: EtcdCluster,
                                                              wrong: str) -> None:
    pki = etcd_tls.tls
    assert pki is not None
    other = EtcdPki.make(tmp_path / "other-pki")
    state = tmp_path / "state"
    if wrong == "ca":
        store = ["--store", etcd_tls.url, "--store-ca", other.path("ca.crt"), "--store-cert", pki.path("client.crt"),
                 "--store-key", pki.path("client.key")]
        expected = "etcd's certificate does not verify against --store-ca"
    else:
        store = ["--store", "http://" + etcd_tls.members[0].endpoint]
        expected = "serves TLS but --store says http://"
    out = subprocess.run([sys.executable, "-m", "meshd.cli", "agent", "--driver", "process", "--mdns", "off",
                          "--no-sidecar", "--api", f"127.0.0.1:{free_port()}", "--dns", f"127.0.0.1:{free_port(udp=True)}", "--state-dir", str(state),
                          "--host-names", "off", *store], capture_output=True, text=True, timeout=120, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    errors = [line for line in (out.stdout + out.stderr).splitlines() if " ERROR " in line]
    assert out.returncode == 1, out.stderr[-2000:]
    assert len(errors) == 1 and "cannot use the store: " in errors[0] and expected in errors[0], errors
    assert not state.exists()  # nothing started: no state dir, no API, no pods


class JoiningMember(PodMember):
    """An agent given only `--join TOKEN --server https://...`: no --store, no TLS files."""

    join: tuple[str, ...] = ()

    def command(self) -> list[str]:
        args = super().command()
        at = args.index("--store")
        args[at:at + 2] = list(self.join)
        return args


@pytest.fixture
async def tls_members(tmp_path: Path, etcd_tls: EtcdCluster) -> AsyncIterator[list[PodMember]]:
    assert etcd_tls.tls is not None
    first = PodMember(tmp_path / "n1", "n1", etcd_tls.url)
    first.command = lambda: [*PodMember.command(first), *etcd_tls.tls.agent_args()]  # type: ignore[method-assign,union-attr]
    second = JoiningMember(tmp_path / "n2", "n2", etcd_tls.url)
    started = [first, second]
    try:
        yield started
    finally:
        await asyncio.gather(*(m.stop() for m in started))
        for member in started:
            kill_pods(member)


@pytest.mark.slow
async def test_an_agent_on_tls_etcd_runs_a_deployment_and_a_joining_node_gets_the_store_files(
        tls_members: list[PodMember], etcd_tls: EtcdCluster) -> None:
    first, second = tls_members
    assert isinstance(second, JoiningMember) and etcd_tls.tls is not None
    await first.start()
    (first.directory / "web.yaml").write_text(DEPLOYMENT)
    code, out, err = await first.kubectl("apply", "-f", str(first.directory / "web.yaml"))
    assert code == 0, err
    assert await poll(lambda: asyncio.sleep(0, len([p for p in running_pods(first) if p.startswith("tls-web-")])
                                            == 2), timeout=90), first.log.read_text()[-3000:]
    # what the agent wrote is in etcd, read back with etcd's own client certificate
    store = await open_tls(etcd_tls, tls_of(etcd_tls.tls))
    try:
        assert store.get("Deployment", "default", "tls-web") is not None
    finally:
        await store.close()

    token = re.search(r"meshd agent --join ([a-z0-9]{6}\.[a-z0-9]{16})\n", first.log.read_text())
    assert token, first.log.read_text()[-3000:]
    second.join = ("--join", token.group(1), "--server", "https://" + first.api.removeprefix("http://"))
    await second.start()
    log = second.log.read_text()
    assert f"joined the cluster: store {etcd_tls.url}" in log and "store-ca.crt, store.crt, store.key" in log, log
    cluster_dir = second.state_dir / "cluster"
    for name, original in (("store-ca.crt", "ca.crt"), ("store.crt", "client.crt"), ("store.key", "client.key")):
        path = cluster_dir / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        assert path.read_bytes() == (etcd_tls.tls.directory / original).read_bytes()
    assert await poll(lambda: _both_ready(second), timeout=60)
    assert await poll(lambda: _both_ready(first), timeout=60)
    # restarted, the joined node reaches etcd again with the files it kept (no new join)
    await second.stop()
    await second.start()
    assert "already joined: using the store" in second.log.read_text()
    assert await poll(lambda: _both_ready(second), timeout=60)


async def _both_ready(member: PodMember) -> bool:
    return await node_status(member) == {"n1": "Ready", "n2": "Ready"}
