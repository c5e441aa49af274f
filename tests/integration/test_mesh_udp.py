"""UDP across nodes over the mesh, with real sockets, real sidecars and real clients: node A's sidecar carries a UDP
Service's flows to node B's dnsmasq through B's mesh gateway (every flow on one mutual-TLS stream, as messages
with the flow's id), `dig` on node A answered from the Service address; a flow keeps its pod; a pod that refuses
(nothing listens) moves the flow to another endpoint; idle flows end, then their stream; the gateway opens UDP
flows only to its own pods' UDP ports."""

from __future__ import annotations

import asyncio
import shlex
import shutil
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "proxy"))
from harness import free_port, run, wait_port
from mesh_pair import MeshPair

from meshd.model.endpoints import Endpoint, ServiceKey
from sidecar.mesh.datagrams import CLOSE, OPEN, message
from sidecar.mesh.wire import frame
from tests.integration.test_mesh_tls import eventually, metric, node_a_cert
from tests.integration.test_sidecar_udp import dnsmasq

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("openssl", "dnsmasq", "dig")), reason="needs openssl, dnsmasq and dig")

QUERY = bytes.fromhex("1234010000010000000000000178047465737400" "0001" "0001")  # x.test A


@pytest.fixture
async def pair(tmp_path: Path):
    mesh = await MeshPair(tmp_path).start("--udp-idle-timeout", "2")
    yield mesh
    codes = await mesh.stop()
    for name, node in mesh.nodes.items():
        assert "Traceback" not in node.sidecar.output(), node.sidecar.output()
        assert codes[name] == 0, node.sidecar.output()


@pytest.fixture
async def dns_pod(tmp_path: Path):
    port = free_port()
    proc = await dnsmasq(port, "10.9.8.7", tmp_path / "dnsmasq.log")
    yield port
    await proc.stop()


async def wait_udp_listener(pair: MeshPair, address: str, port: int) -> None:
    async def listening() -> bool:
        return f"{address}:{port}/UDP" in pair.nodes["node-a"].sidecar.output()
    await eventually(listening)


async def dig(address: str, port: int) -> tuple[int, str]:
    code, out, _ = await run("dig", "+short", "+time=3", "+tries=2", f"@{address}", "-p", str(port), "a.x.test")
    return code, out.decode().strip()


async def test_dig_on_node_a_is_answered_by_a_dns_pod_of_node_b_over_mutual_tls(pair: MeshPair, dns_pod: int):
    port = free_port()
    address = pair.serve("dns", port, dns_pod, port_name="dns", protocol="UDP")
    await wait_udp_listener(pair, address, port)
    for _ in range(5):  # each dig: a new source port, a new flow, on the one stream to node B
        assert await dig(address, port) == (0, "10.9.8.7")
    a, b = await metric(pair, "node-a"), await metric(pair, "node-b")
    assert a['meshd_sidecar_mesh_outbound_connections_total{result="made"}'] == 1
    assert b["meshd_sidecar_mesh_gateway_connections_total"] == 1
    assert a['meshd_sidecar_udp_datagrams_total{direction="to_client",service="default/dns"}'] >= 5


async def test_flows_share_one_stream_and_replies_come_from_the_service_address(pair: MeshPair, dns_pod: int):
    port = free_port()
    address = pair.serve("dns", port, dns_pod, port_name="dns", protocol="UDP")
    await wait_udp_listener(pair, address, port)
    before = (await metric(pair, "node-b"))["meshd_sidecar_mesh_gateway_connections_total"]
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        s.bind(("127.0.0.1", 0))
        for i in range(10):
            await loop.sock_sendto(s, QUERY, (address, port))
            reply, source = await asyncio.wait_for(loop.sock_recvfrom(s, 512), 10)
            assert source == (address, port) and reply[:2] == b"\x12\x34"
            assert reply[-4:] == bytes([10, 9, 8, 7]), i
    for _ in range(5):
        assert await dig(address, port) == (0, "10.9.8.7")  # new flows, the same stream
    b = await metric(pair, "node-b")
    assert b["meshd_sidecar_mesh_gateway_connections_total"] == before + 1
    assert b["meshd_sidecar_mesh_gateway_active_connections"] == 1

    async def expired() -> bool:  # --udp-idle-timeout 2: the flows end, then (10 s later) their stream
        return (await metric(pair, "node-b"))["meshd_sidecar_mesh_gateway_active_connections"] == 0
    await eventually(expired, timeout=30)


async def test_a_remote_pod_that_refuses_moves_the_flow_to_another_endpoint(pair: MeshPair, dns_pod: int):
    port = free_port()
    key = ServiceKey("default", "dns")
    address = pair.serve("dns", port, dns_pod, port_name="dns", protocol="UDP")
    await wait_udp_listener(pair, address, port)
    dead = free_port()  # nothing listens: node B's gateway hears ICMP port unreachable and ends the stream
    for agent, gateway in ((pair.nodes["node-a"].agent, pair.gateway), (pair.nodes["node-b"].agent, "")):
        agent.add(key, Endpoint(name="dns-dead", address="127.0.0.1", ports={"dns": dead}, node="node-b",
                                gateway=gateway))
    await asyncio.sleep(0.5)
    answers = [await dig(address, port) for _ in range(12)]
    assert set(answers) == {(0, "10.9.8.7")}, answers
    a = await metric(pair, "node-a")
    refused = a.get('meshd_sidecar_upstream_attempts_total{endpoint="dns-dead",outcome="connect_error",'
                    'service="default/dns"}', 0)
    assert refused >= 1, a  # it was tried, and its flows moved on


async def opened(pair: MeshPair, tmp_path: Path, target: str) -> bytes:
    """What the gateway answers a DATAGRAMS stream that opens one flow to `target` (openssl s_client, node A's
    certificate): b"OK\\n", then a CLOSE message with the reason when the OPEN is refused."""
    request = tmp_path / "request"
    request.write_bytes(b"DATAGRAMS\n" + frame(message(OPEN, 7, target.encode())))
    ca = str(pair.nodes["node-a"].mesh_dir / "ca.pem")
    command = ["openssl", "s_client", "-connect", pair.gateway, "-tls1_3", "-alpn", "meshd/1", "-CAfile", ca,
               "-quiet", "-no_ign_eof", *node_a_cert(pair)]
    script = f"(cat {shlex.quote(str(request))}; sleep 1) | {shlex.join(command)}"
    _, out, _ = await run("sh", "-c", script, timeout=20)
    return out


async def test_the_gateway_opens_udp_flows_only_to_its_own_pods_udp_ports(pair: MeshPair, dns_pod: int,
                                                                        tmp_path: Path):
    port = free_port()
    pair.serve("dns", port, dns_pod, port_name="dns", protocol="UDP")
    web = free_port()
    pair.serve("web", free_port(), web)  # a TCP Service's pod port
    await wait_port(pair.gateway_port)

    async def accepted() -> bool:  # the gateway knows the pod: the OPEN passes (no CLOSE comes back)
        out = await opened(pair, tmp_path, f"127.0.0.1:{dns_pod}")
        return out.startswith(b"OK\n") and bytes((CLOSE,)) + (7).to_bytes(4, "big") not in out
    await eventually(accepted)
    for target in (f"127.0.0.1:{web}", f"127.0.0.2:{dns_pod}", "127.0.0.1:53"):
        out = await opened(pair, tmp_path, target)
        assert out.startswith(b"OK\n") and f"{target}/udp is not a pod endpoint of this node".encode() in out, out
    assert b"bad OPEN" in await opened(pair, tmp_path, "dns.example:53")


