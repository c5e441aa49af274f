"""Services of type ExternalName through the real kubectl (apply, get, exec) and the real dig (dnsutils) against the
agent's DNS port: a CNAME to the external name (and, for a Service name, its A record in the same answer), no
cluster IP, and a Service turned ExternalName and back with `kubectl apply` frees its address and gets one again;
on the Docker engine, a pod's own resolver finds an alias by its short names through the search path."""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import pytest

from tests.integration.agent_harness import agent_options, free_port, started_agent
from tests.integration.test_kubectl import Cluster, write_kubeconfig
from tests.integration.test_sidecar_udp import dnsmasq

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("kubectl") is None or shutil.which("dig") is None,
                                 reason="kubectl and dig are needed")]

BACKEND = """\
apiVersion: v1
kind: Service
metadata: {name: backend}
spec:
  selector: {app: backend}
  ports: [{port: 80}]
"""
ALIAS = """\
apiVersion: v1
kind: Service
metadata: {name: alias}
spec:
  type: ExternalName
  externalName: backend.default.svc.cluster.local
"""
EXTERNAL = """\
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  type: ExternalName
  externalName: db.x.test.
  ports: [{port: 5432}]
"""
CLUSTER_IP = """\
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  ports: [{port: 5432}]
"""
Z = "default.svc.cluster.local."
UPSTREAM_ANSWER = "192.0.2.7"


@pytest.fixture
async def cluster(tmp_path, agent_id, monkeypatch, request):
    driver = getattr(request, "param", "process")  # parametrize indirectly with "docker" for the real engine
    if driver == "docker":
        request.getfixturevalue("python_image")
    upstream_port = free_port(udp=True)  # the host's resolver, for targets outside the zone: dnsmasq (*.x.test)
    upstream = await dnsmasq(upstream_port, UPSTREAM_ANSWER, tmp_path / "dnsmasq.log")
    options = agent_options(tmp_path, agent_id, driver=driver, dns_upstream=f"127.0.0.1:{upstream_port}")
    agent = await started_agent(options)
    monkeypatch.setenv("MESHD_TOKEN", agent.token)
    api = f"http://{options.api}"
    kubeconfig = await write_kubeconfig(api, options.state_dir, tmp_path / "kubeconfig")
    yield Cluster(api, kubeconfig, tmp_path, int(options.dns.rsplit(":", 1)[1]))
    await agent.close(stop_pods=True)
    await upstream.stop()


async def apply(cluster: Cluster, text: str) -> tuple[int, str, str]:
    path = cluster.cache / f"manifest-{time.monotonic_ns()}.yaml"
    path.write_text(text)
    return await cluster.kubectl("apply", "-f", str(path))


async def ok(cluster: Cluster, *args: str) -> str:
    code, out, err = await cluster.kubectl(*args)
    assert code == 0, (args, out, err)
    return out


async def answer(cluster: Cluster, name: str, qtype: str = "A") -> list[tuple[str, str, str]]:
    """dig's answer section: (owner, type, data) per record, in the order of the answer."""
    proc = await asyncio.create_subprocess_exec(
        "dig", "+noall", "+answer", "+time=2", "+tries=3", "-p", str(cluster.dns_port),
        "@127.0.0.1", name, qtype, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    return [(f[0], f[3], f[4]) for f in (line.split() for line in out.decode().splitlines()) if len(f) == 5]


async def row(cluster: Cluster, name: str) -> list[str]:
    return (await ok(cluster, "get", "svc", name, "--no-headers")).split()


async def test_external_name_services_answer_a_cname_and_a_service_changes_type_and_back(cluster):
    for text in (BACKEND, ALIAS, EXTERNAL):
        code, out, err = await apply(cluster, text)
        assert code == 0, (out, err)

    # kubectl get: TYPE, CLUSTER-IP <none>, EXTERNAL-IP the external name, the (unused) port
    assert (await row(cluster, "db"))[1:5] == ["ExternalName", "<none>", "db.x.test.", "5432/TCP"]
    spec = json.loads(await ok(cluster, "get", "svc", "db", "-o", "json"))["spec"]
    assert "clusterIP" not in spec and "clusterIPs" not in spec and spec["externalName"] == "db.x.test."
    described = " ".join((await ok(cluster, "describe", "svc", "db")).split())
    assert "Type: ExternalName" in described and "External Name: db.x.test." in described

    # DNS: a CNAME for every type asked; a Service name as target: its A record follows in the same answer
    backend = (await row(cluster, "backend"))[2]
    # a target outside the zone: its address from the host's resolver (dnsmasq), as CoreDNS's upstream gives it
    assert await answer(cluster, f"db.{Z}") == [(f"db.{Z}", "CNAME", "db.x.test."),
                                               ("db.x.test.", "A", UPSTREAM_ANSWER)]
    assert await answer(cluster, f"db.{Z}", "SRV") == [(f"db.{Z}", "CNAME", "db.x.test.")]
    assert await answer(cluster, "db.x.test.") == []  # the agent itself still recurses for nobody (REFUSED)
    assert await answer(cluster, f"alias.{Z}") == [(f"alias.{Z}", "CNAME", f"backend.{Z}"),
                                                  (f"backend.{Z}", "A", backend)]

    # turned ClusterIP with `kubectl apply` (type and externalName leave): an address, an A record
    code, out, err = await apply(cluster, CLUSTER_IP)
    assert code == 0, (out, err)
    _, kind, address, external, *_ = await row(cluster, "db")
    assert (kind, external) == ("ClusterIP", "<none>") and address.count(".") == 3
    assert await answer(cluster, f"db.{Z}") == [(f"db.{Z}", "A", address)]

    # and back (the live clusterIP is carried by the apply and dropped by the server): the address is free again
    code, out, err = await apply(cluster, EXTERNAL)
    assert code == 0, (out, err)
    assert (await row(cluster, "db"))[1:4] == ["ExternalName", "<none>", "db.x.test."]
    assert await answer(cluster, f"db.{Z}", "TXT") == [(f"db.{Z}", "CNAME", "db.x.test.")]
    taker = BACKEND.replace("backend", "taker").replace("ports:", f"clusterIP: {address}\n  ports:")
    code, out, err = await apply(cluster, taker)
    assert code == 0, (out, err)  # "provided IP is already allocated" had it not been freed
    assert await answer(cluster, f"taker.{Z}") == [(f"taker.{Z}", "A", address)]


async def test_a_bad_external_name_service_is_refused_naming_the_field(cluster):
    code, out, err = await apply(cluster, EXTERNAL.replace("  externalName: db.x.test.\n", ""))
    assert code != 0 and "spec.externalName" in err and "required" in err, (out, err)
    code, out, err = await apply(cluster, EXTERNAL.replace("db.x.test.", "db_example.com"))
    assert code != 0 and "spec.externalName" in err, (out, err)
    code, out, err = await apply(cluster, EXTERNAL.replace("  ports:", "  clusterIP: 127.1.2.3\n  ports:"))
    assert code != 0 and "may not be set for ExternalName" in err, (out, err)


CLIENT = """\
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: meshd/python:3.11
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
"""
RESOLVE = "import socket, sys; name, aliases, addresses = socket.gethostbyname_ex(sys.argv[1]); print(name, *addresses)"


@pytest.mark.docker
@pytest.mark.parametrize("cluster", ["docker"], indirect=True)
async def test_a_pod_resolves_an_alias_of_a_service_by_its_short_names(cluster):
    for text in (BACKEND, ALIAS, EXTERNAL, CLIENT):
        code, out, err = await apply(cluster, text)
        assert code == 0, (out, err)
    await ok(cluster, "wait", "--for=condition=Ready", "pod/client", "--timeout=90s")
    backend = (await row(cluster, "backend"))[2]
    for name in ("alias", "alias.default", "alias.default.svc", "alias.default.svc.cluster.local"):
        out = await ok(cluster, "exec", "client", "--", "python3", "-c", RESOLVE, name)  # glibc, the search path
        assert out.split() == [f"backend.{Z}".rstrip("."), backend], name
    out = await ok(cluster, "exec", "client", "--", "python3", "-c", RESOLVE, "db")  # a target outside the zone
    assert out.split() == ["db.x.test", UPSTREAM_ANSWER]
