"""UDP Services through the sidecar: dnsmasq replicas behind a `protocol: UDP` port, `dig` as the client.

Each dnsmasq replica answers `*.x.test` with an address of its own, so an answer tells which replica served.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "proxy"))
import fake_agent
from harness import Process, free_port, run, spawn, start_sidecar

from meshd.model.endpoints import Endpoint, PortInfo, ServiceInfo, ServiceKey

pytestmark = pytest.mark.skipif(
    not (shutil.which("dnsmasq") and shutil.which("dig")), reason="needs dnsmasq and dig"
)
KEY = ServiceKey("default", "dns")


def loopback() -> str:
    return f"127.216.{random.randint(1, 254)}.{random.randint(2, 254)}"


async def dnsmasq(port: int, answer: str, log: Path) -> Process:
    proc = await spawn(
        ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port", str(port), "--listen-address", "127.0.0.1",
         "--bind-interfaces", f"--address=/x.test/{answer}", "--no-resolv", "--no-hosts", "--pid-file=",
         "--user=root"],
        log,
    )  # fmt: skip
    for _ in range(100):
        code, out, _ = await run(
            "dig", "+short", "+time=1", "+tries=1", "@127.0.0.1", "-p", str(port), "a.x.test"
        )
        if code == 0 and out.strip() == answer.encode():
            return proc
        await asyncio.sleep(0.05)
    await proc.stop()
    raise AssertionError(f"dnsmasq did not start:\n{proc.output()}")


async def dig(address: str, name: str = "a.x.test") -> str:
    # dig ignores a reply from any other address than the one it asked: an answer comes from the Service's
    code, out, err = await run("dig", "+short", "+time=2", "+tries=2", f"@{address}", "-p", "53", name)
    assert code == 0, (out, err)
    return out.decode().strip()


@pytest.fixture
async def dns(tmp_path: Path):
    agent = fake_agent.FakeAgent(heartbeat=1.0)
    api = await agent.start()
    replicas = {}
    procs = []
    for i in range(3):
        port = free_port()
        procs.append(await dnsmasq(port, f"10.0.0.{i + 1}", tmp_path / f"dnsmasq{i}.log"))
        replicas[f"d{i}"] = port
    address = loopback()
    agent.set_service(
        ServiceInfo(KEY, address, (PortInfo("dns", 53, 53, "UDP"),), {}),
        [Endpoint(name, "127.0.0.1", {"dns": port}) for name, port in replicas.items()],
    )
    sidecar, mport = await start_sidecar(api, tmp_path / "sidecar.log")
    for _ in range(100):
        if f"{address}:53/UDP" in sidecar.output():
            break
        await asyncio.sleep(0.05)
    yield agent, address, mport, sidecar
    code = await sidecar.stop()
    for proc in procs:
        await proc.stop()
    await agent.stop()
    assert code == 0, sidecar.output()
    assert "Traceback" not in sidecar.output(), sidecar.output()


async def test_dig_through_a_udp_service_spreads_flows_over_every_replica(dns):
    _, address, mport, _ = dns
    answers = [await dig(address) for _ in range(30)]  # each dig: a new source port, a new flow
    assert set(answers) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}
    _, out, _ = await run("curl", "-s", f"http://127.0.0.1:{mport}/metrics")
    metrics = out.decode()
    got = re.search(
        r'meshd_sidecar_udp_datagrams_total\{direction="to_client",service="default/dns"\} (\S+)', metrics
    )
    assert got and float(got.group(1)) >= 30, metrics


async def test_a_flow_keeps_its_replica_and_replies_come_from_the_service_address(dns):
    _, address, _, _ = dns
    query = bytes.fromhex("1234010000010000000000000178047465737400 0001 0001".replace(" ", ""))  # x.test A
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        s.bind(("127.0.0.1", 0))
        answers = set()
        for _ in range(10):
            await loop.sock_sendto(s, query, (address, 53))
            reply, source = await asyncio.wait_for(loop.sock_recvfrom(s, 512), 5)
            assert source == (address, 53)
            assert reply[:2] == b"\x12\x34"
            answers.add(reply[-4:])  # the A record's address
        assert len(answers) == 1  # one flow, one replica


async def test_a_refusing_endpoint_moves_the_flow_and_a_removed_one_gets_no_new_flow(dns):
    agent, address, mport, _ = dns
    agent.add(KEY, Endpoint("dead", "127.0.0.1", {"dns": free_port()}))  # nothing listens: ICMP unreachable
    await asyncio.sleep(0.3)
    answers = [await dig(address) for _ in range(20)]
    assert set(answers) <= {"10.0.0.1", "10.0.0.2", "10.0.0.3"} and "" not in answers
    _, out, _ = await run("curl", "-s", f"http://127.0.0.1:{mport}/metrics")
    refused = re.search(
        r'attempts_total\{endpoint="dead",outcome="connect_error",service="default/dns"\} (\S+)', out.decode()
    )
    assert refused and float(refused.group(1)) >= 1, out.decode()  # it was tried, and its flows moved on
    agent.remove(KEY, "d0", "dead")
    await asyncio.sleep(0.3)
    answers = [await dig(address) for _ in range(15)]
    assert set(answers) == {"10.0.0.2", "10.0.0.3"}


async def test_a_listen_mode_sidecar_serves_a_udp_port_once_discovery_says_it_is_udp(tmp_path: Path):
    agent = fake_agent.FakeAgent(heartbeat=1.0)
    api = await agent.start()
    port = free_port()
    server = await dnsmasq(port, "10.0.0.9", tmp_path / "dnsmasq.log")
    agent.set_service(
        ServiceInfo(KEY, None, (PortInfo("dns", 53, 53, "UDP"),), {}),
        [Endpoint("d0", "127.0.0.1", {"dns": port})],
    )
    listen = free_port()
    sidecar, _ = await start_sidecar(
        api, tmp_path / "sidecar.log", "--listen", f"127.0.0.1:{listen}", "--service", "dns"
    )
    try:
        for _ in range(100):
            if "/udp for default/dns" in sidecar.output():
                break
            await asyncio.sleep(0.05)
        code, out, _ = await run(
            "dig", "+short", "+time=2", "+tries=2", "@127.0.0.1", "-p", str(listen), "a.x.test"
        )
        assert (code, out.strip()) == (0, b"10.0.0.9")
    finally:
        assert await sidecar.stop() == 0, sidecar.output()
        await server.stop()
        await agent.stop()
    assert "Traceback" not in sidecar.output(), sidecar.output()
