"""Services that are not HTTP, end to end: `meshd agent`, its node sidecar, redis-server and dnsmasq replicas in
containers (meshd/servers, built offline), and redis-cli, redis-benchmark and dig as the clients."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap

import pytest

from tests.e2e.test_mesh import Meshd

pytestmark = [pytest.mark.docker, pytest.mark.slow,
              pytest.mark.skipif(not all(shutil.which(t) for t in ("redis-cli", "redis-benchmark", "dig")),
                                 reason="needs redis-cli, redis-benchmark and dig (redis-tools, dnsutils)")]  # fmt: skip

MANIFEST = textwrap.dedent("""\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: redis}
    spec:
      replicas: 2
      selector: {matchLabels: {app: redis}}
      template:
        metadata: {labels: {app: redis}}
        spec:
          terminationGracePeriodSeconds: 2
          containers:
          - name: redis
            image: meshd/servers:latest
            imagePullPolicy: IfNotPresent
            command: ["redis-server", "--port", "6379", "--save", "", "--appendonly", "no", "--protected-mode", "no"]
            ports: [{containerPort: 6379, name: redis}]
            readinessProbe: {tcpSocket: {port: redis}, periodSeconds: 0.2}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: redis}
    spec:
      selector: {app: redis}
      ports:
      - {name: redis, port: 6379, targetPort: redis}   # opaque by its name (and its port)
      - {name: cache, port: 7000, targetPort: redis}   # nothing declared: detected
      - {name: db, port: 7001, targetPort: redis, appProtocol: tcp}
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: dns}
    spec:
      replicas: 2
      selector: {matchLabels: {app: dns}}
      template:
        metadata: {labels: {app: dns}}
        spec:
          terminationGracePeriodSeconds: 2
          containers:
          - name: dnsmasq
            image: meshd/servers:latest
            imagePullPolicy: IfNotPresent
            command: ["sh", "-c", "exec dnsmasq --no-daemon --conf-file=/dev/null --port 5353 --no-resolv --no-hosts --user=root --pid-file= --address=/x.test/$(hostname -i)"]
            ports: [{containerPort: 5353, name: dns, protocol: UDP}]
            readinessProbe: {tcpSocket: {port: 5353}, periodSeconds: 0.2}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: dns}
    spec:
      selector: {app: dns}
      ports: [{name: dns, port: 53, targetPort: dns, protocol: UDP}]
    """)


def redis_cli(address: str, port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-h", address, "-p", str(port), *args], capture_output=True, text=True,
                          timeout=20, check=True).stdout.strip()  # fmt: skip


def dig(*args: str) -> str:
    return subprocess.run(["dig", "+short", "+time=2", "+tries=2", *args], capture_output=True, text=True,
                          timeout=20, check=False).stdout.strip()  # fmt: skip


def test_redis_and_dns_services_through_the_node_sidecar(tmp_path, servers_image, pause_image):
    manifest = tmp_path / "l4.yaml"
    manifest.write_text(MANIFEST)
    meshd = Meshd(tmp_path, "agent").start()
    try:
        assert "created" in meshd.cli("apply", "-f", str(manifest))
        redis = meshd.service_address("redis")
        dns = meshd.service_address("dns")
        meshd.until(lambda: meshd.ready_endpoints("redis") == 2 and meshd.ready_endpoints("dns") == 2,
                    what="every redis and dnsmasq replica ready")  # fmt: skip
        for port in (6379, 7000, 7001):
            assert meshd.until(lambda p=port: _quiet(redis_cli, redis, p, "ping") == "PONG", what=f"redis :{port}")
            assert redis_cli(redis, port, "set", "k", "v") == "OK"
            out = subprocess.run(
                ["redis-benchmark", "-h", redis, "-p", str(port), "-q", "-n", "2000", "-t", "ping,set,get"],
                capture_output=True, text=True, timeout=120, check=True,
            ).stdout  # fmt: skip
            assert all(re.search(rf"{t}: [\d.]+ requests per second", out) for t in ("PING_INLINE", "SET", "GET")), out
        log = (meshd.state / "sidecar.log").read_text()  # how the sidecar took each port
        for port, protocol in ((6379, "tcp"), (7000, "detect"), (7001, "tcp")):
            assert f"listening on {redis}:{port}/TCP ({protocol}, " in log, log  # ", bound" or ", inherited"
        # each connection reaches one replica; both replicas serve
        run_ids = {re.search(r"run_id:(\w+)", redis_cli(redis, 6379, "info", "server")).group(1)  # type: ignore[union-attr]
                   for _ in range(20)}  # fmt: skip
        assert len(run_ids) == 2, run_ids
        # UDP: dig through the Service's address gets answers from both dnsmasq replicas, per flow
        meshd.until(lambda: dig(f"@{dns}", "-p", "53", "a.x.test"), what="dns through the sidecar")
        answers = {dig(f"@{dns}", "-p", "53", "a.x.test") for _ in range(20)}
        assert len(answers) == 2 and all(re.fullmatch(r"[\d.]+", a) for a in answers), answers
        # and its SRV record says _udp
        host, port = meshd.dns.split(":")
        srv = dig(f"@{host}", "-p", port, "_dns._udp.dns.default.svc.cluster.local", "SRV")
        assert len(srv.splitlines()) == 2 and all(line.split()[2] == "5353" for line in srv.splitlines()), srv
    finally:
        meshd.stop()
    assert meshd.process is not None and meshd.process.returncode == 0


def _quiet(fn, *args):  # type: ignore[no-untyped-def]
    try:
        return fn(*args)
    except subprocess.SubprocessError:
        return None
