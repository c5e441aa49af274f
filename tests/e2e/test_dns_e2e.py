"""DNS end to end: a real agent process (process driver) with real pods, asked by `dig`, `curl` and dnsmasq.

A user applies a Deployment and a Service, finds the replicas with `dig SRV`, reaches one with `curl` at the
address and port DNS gave, sees a replica leave the answers as soon as its readiness probe fails (and come
back), and resolves the Service through dnsmasq forwarding `cluster.local` to meshd (a split-DNS setup).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.agent_harness import free_port as free_udp_tcp_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("dig") is None, reason="dig (dnsutils) is not installed"),
]

SRV = "_http._tcp.web.default.svc.cluster.local"


def free_port() -> int:
    return free_udp_tcp_port(udp=True)


async def run(*command: str, timeout: float = 30) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout)
    return out.decode()


async def dig(port: int, *args: str) -> list[str]:
    out = await run("dig", "@127.0.0.1", "-p", str(port), "+norec", "+short", "+time=2", "+tries=2", *args)
    return sorted(line for line in out.splitlines() if line and not line.startswith(";"))


async def until(check, *, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"not met within {timeout}s (last: {value!r})")


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def manifest(app_port: int, markers: Path) -> str:
    return textwrap.dedent(f"""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: web}}
        spec:
          replicas: 2
          selector: {{matchLabels: {{app: web}}}}
          template:
            metadata: {{labels: {{app: web}}}}
            spec:
              terminationGracePeriodSeconds: 2
              containers:
              - name: web
                image: python
                command: ["sh", "-c", "exec {sys.executable} -m http.server $PORT --bind $POD_IP"]
                ports: [{{containerPort: {app_port}, name: http}}]
                readinessProbe:
                  exec: {{command: ["sh", "-c", "test ! -e {markers}/down-$POD_IP"]}}
                  periodSeconds: 0.2
                  failureThreshold: 1
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: web}}
        spec:
          selector: {{app: web}}
          ports: [{{name: http, port: 80, targetPort: http}}]
        """)


@pytest.fixture
def app_port() -> int:
    return free_port()


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    """A directory where a file `down-<pod address>` makes that pod's readiness probe fail."""
    path = tmp_path / "markers"
    path.mkdir()
    return path


@pytest.fixture
def agent(tmp_path: Path, app_port: int, markers: Path) -> Iterator[tuple[int, int]]:
    """(api port, dns port) of `meshd up` running the web Deployment and Service (Ctrl-C removes the pods)."""
    api, dns_port = free_port(), free_port()
    (tmp_path / "web.yaml").write_text(manifest(app_port, markers))
    log = open(tmp_path / "agent.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "meshd.cli", "up", "-f", str(tmp_path / "web.yaml"), "--driver", "process",
         "--api", f"127.0.0.1:{api}", "--dns", f"127.0.0.1:{dns_port}", "--state-dir", str(tmp_path / "state"),
         "--mdns", "off", "--no-sidecar", "--agent-id", f"dns-e2e-{os.getpid()}"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", api), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "agent.log").read_text()) from None
                time.sleep(0.1)
        yield api, dns_port
    finally:
        stop(process)
        log.close()
        leftovers = _pods_serving(app_port)
        for pid in leftovers:  # only this test's replicas: they alone serve on its port
            os.kill(pid, signal.SIGKILL)
        assert not leftovers, "meshd up left replicas running"


def _pods_serving(port: int) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"http.server" in argv and str(port).encode() in argv:
            pids.append(int(proc.name))
    return pids


@pytest.fixture
def dnsmasq(agent: tuple[int, int], tmp_path: Path) -> Iterator[int]:
    """A dnsmasq on a free port that forwards cluster.local to the agent (as a split-DNS resolver would)."""
    if shutil.which("dnsmasq") is None and not Path("/usr/sbin/dnsmasq").exists():
        pytest.skip("dnsmasq is not installed")
    port = free_port()
    process = subprocess.Popen(
        [shutil.which("dnsmasq") or "/usr/sbin/dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
         f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces", f"--pid-file={tmp_path / 'dm.pid'}",
         f"--server=/cluster.local/127.0.0.1#{agent[1]}", *(["--user=root"] if os.geteuid() == 0 else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    yield port
    stop(process, signal.SIGTERM)  # dnsmasq ignores SIGINT


async def test_dig_srv_curl_and_readiness(agent: tuple[int, int], markers: Path, dnsmasq: int) -> None:
    _, dns_port = agent

    # the Service has its address once `meshd up` applied it; the replicas appear in SRV once ready
    assert len(await until(lambda: dig(dns_port, "web.default.svc.cluster.local"), timeout=30)) == 1
    records = await until(lambda: _srv(dns_port, count=2), timeout=60)
    ports = {r.split()[2] for r in records}
    targets = [r.split()[3] for r in records]
    assert len(ports) == 1 and all(t.endswith(".web.default.svc.cluster.local.") for t in targets)

    # a real client uses what DNS said: the target's A record, the SRV port
    address = (await dig(dns_port, targets[0]))[0]
    assert address == targets[0].split(".")[0].replace("-", ".")
    page = await run("curl", "-sS", "--max-time", "5", f"http://{address}:{ports.pop()}/")
    assert "Directory listing" in page

    # readiness fails: the replica leaves the answers; it comes back when ready again
    (markers / f"down-{address}").touch()
    remaining = await until(lambda: _srv(dns_port, count=1), timeout=30)
    assert address.replace(".", "-") not in remaining[0]
    assert await dig(dns_port, targets[0]) == []  # NXDOMAIN: no name for a non-ready endpoint
    (markers / f"down-{address}").unlink()
    await until(lambda: _srv(dns_port, count=2), timeout=30)

    # through a resolver that forwards the zone to meshd
    service_address = await dig(dns_port, "web.default.svc.cluster.local")
    assert await dig(dnsmasq, "web.default.svc.cluster.local") == service_address
    assert len(await dig(dnsmasq, SRV, "SRV")) == 2


async def _srv(port: int, *, count: int) -> list[str] | None:
    records = await dig(port, SRV, "SRV")
    return records if len(records) == count else None
