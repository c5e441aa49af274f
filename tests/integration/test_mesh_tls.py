"""Traffic between nodes over mutual TLS, with real sockets, real sidecars and real clients: node A's sidecar
reaches a pod of node B through B's mesh gateway (curl over HTTP/1, redis-cli and socat over opaque TCP); the
gateway refuses `openssl s_client` without a certificate, with one from another CA, an expired one, a revoked
one and one of a deleted node; it relays to no address but its own pods; a rotated certificate keeps open
connections and serves new ones."""

from __future__ import annotations

import asyncio
import datetime
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "proxy"))
from harness import free_port, run, spawn, start_backend, wait_port
from mesh_pair import MeshPair, issue, write_node

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from meshd.cluster.meshcerts import write_trust
from meshd.cluster.pki import key_pem, make_cluster_ca

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("openssl", "curl", "redis-server", "redis-cli", "socat")),
    reason="needs openssl, curl, redis-server, redis-cli and socat",
)


@pytest.fixture
async def pair(tmp_path: Path):
    mesh = await MeshPair(tmp_path).start()
    yield mesh
    codes = await mesh.stop()
    for name, node in mesh.nodes.items():
        assert "Traceback" not in node.sidecar.output(), node.sidecar.output()
        assert codes[name] == 0, node.sidecar.output()


@pytest.fixture
async def web_pod(tmp_path: Path):
    port = free_port()
    proc = await spawn([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                        "--directory", str(tmp_path)], tmp_path / "web.log")
    await asyncio.to_thread((tmp_path / "hello.txt").write_text, "hello from node B\n")
    await wait_port(port)
    yield port
    await proc.stop()


@pytest.fixture
async def keep_alive_pod(tmp_path: Path):
    """A pod that keeps connections open (aiohttp; http.server closes each), answering "hello from b0"."""
    proc, port = await start_backend("b0", tmp_path / "b0.log")
    yield port
    await proc.stop()


async def eventually(check, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the condition did not hold in time")
        await asyncio.sleep(0.2)


def files(directory: Path, name: str, cert: x509.Certificate, key) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}-key.pem").write_bytes(key_pem(key))
    return str(directory / f"{name}.pem"), str(directory / f"{name}-key.pem")


async def s_client(pair: MeshPair, line: str, *cert_args: str) -> str:
    """What the gateway answers a CONNECT line through `openssl s_client` (stdout and stderr together)."""
    ca = str(pair.nodes["node-a"].mesh_dir / "ca.pem")
    command = ["openssl", "s_client", "-connect", pair.gateway, "-tls1_3", "-alpn", "meshd/1", "-CAfile", ca,
               "-quiet", "-no_ign_eof", *cert_args]
    # the line, then a second before the end of input, so the answer arrives before s_client closes
    script = f"(printf '%s' {shlex.quote(line)}; sleep 1) | {shlex.join(command)}"
    _, out, err = await run("sh", "-c", script, timeout=20)
    return out.decode(errors="replace") + err.decode(errors="replace")


def node_a_cert(pair: MeshPair) -> tuple[str, ...]:
    directory = pair.nodes["node-a"].mesh_dir
    return ("-cert", str(directory / "node.pem"), "-key", str(directory / "node-key.pem"))


async def test_http1_through_two_sidecars_over_mutual_tls(pair: MeshPair, web_pod: int):
    port = free_port()
    address = pair.serve("web", port, web_pod)
    await wait_port(port, address)
    for _ in range(3):  # a pooled upstream connection, then reused
        code, out, err = await run("curl", "-sS", "--max-time", "10", f"http://{address}:{port}/hello.txt")
        assert (code, out) == (0, b"hello from node B\n"), err
    a, b = await metric(pair, "node-a"), await metric(pair, "node-b")
    assert a['meshd_sidecar_mesh_outbound_connections_total{result="made"}'] >= 1
    assert b["meshd_sidecar_mesh_gateway_connections_total"] >= 1
    expiry = pair.certs["node-a"].not_valid_after_utc.timestamp()
    assert a["meshd_sidecar_mesh_certificate_expiry_timestamp_seconds"] == expiry


async def test_connections_to_a_gateway_are_warmed_and_reused(pair: MeshPair, web_pod: int):
    """http.server closes every connection: each request needs a new stream to node B's pod, and after the
    first they take connections whose TLS handshake was done already: warmed, or given back by the stream
    before (meshd/2: sidecar/mesh/warm.py, wire.py)."""
    port = free_port()
    address = pair.serve("web", port, web_pod)
    await wait_port(port, address)
    for _ in range(6):
        code, out, err = await run("curl", "-sS", "--max-time", "10", f"http://{address}:{port}/hello.txt")
        assert (code, out) == (0, b"hello from node B\n"), err
        await asyncio.sleep(0.1)  # (the refill of the one taken is under way)
    a, b = await metric(pair, "node-a"), await metric(pair, "node-b")
    assert a['meshd_sidecar_mesh_outbound_connections_total{result="made"}'] >= 6
    assert a["meshd_sidecar_mesh_outbound_warm_connections_total"] >= 5, a
    # meshd/2: each stream ended cleanly (the pod closed, then the codec), so its connection was given back
    assert a["meshd_sidecar_mesh_outbound_reused_connections_total"] >= 5, a
    assert b["meshd_sidecar_mesh_gateway_connections_total"] >= 6  # six streams reached the pod


async def test_grpc_over_h2_through_the_gateway(pair: MeshPair, tmp_path: Path):
    grpc = pytest.importorskip("grpc")
    port = free_port()
    script = Path(__file__).resolve().parents[2] / "bench" / "h2" / "grpc_backend.py"
    backend = await spawn([sys.executable, str(script), "r0", f"127.0.0.1:{port}"], tmp_path / "grpc.log")
    try:
        await wait_port(port)
        address = pair.serve("echo", 50051, port, port_name="grpc")
        await wait_port(50051, address)

        def calls() -> tuple[bytes, bytes]:
            with grpc.insecure_channel(f"{address}:50051") as channel:
                call = channel.unary_unary("/test.Echo/Unary")
                big = channel.unary_unary("/test.Echo/Echo")(b"z" * 3_000_000, timeout=30)  # past every window
                return call(b"", timeout=10), big

        served, big = await asyncio.to_thread(calls)
        assert served == b"r0" and big == b"z" * 3_000_000
    finally:
        await backend.stop()


async def test_opaque_tcp_through_the_gateway_with_half_close(pair: MeshPair, tmp_path: Path):
    redis_port, echo_port = free_port(), free_port()
    redis = await spawn(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                         "--appendonly", "no"], tmp_path / "redis.log")
    echo = await spawn(["socat", f"TCP-LISTEN:{echo_port},bind=127.0.0.1,fork,reuseaddr", "SYSTEM:'cat; echo done'"],
                       tmp_path / "echo.log")
    try:
        await wait_port(redis_port)
        await wait_port(echo_port)
        address = pair.serve("redis", 6379, redis_port, port_name="redis")
        await wait_port(6379, address)
        code, out, err = await run("redis-cli", "-h", address, "-p", "6379", "set", "k", "across nodes")
        assert (code, out.strip()) == (0, b"OK"), err
        code, out, err = await run("redis-cli", "-h", address, "-p", "6379", "get", "k")
        assert (code, out.strip()) == (0, b"across nodes"), err
        echo_address = pair.serve("echo", 9000, echo_port, port_name="tcp-echo")
        await wait_port(9000, echo_address)
        code, out, err = await run("socat", "-t", "5", "-", f"TCP:{echo_address}:9000", stdin=b"hello\n")
        assert (code, out) == (0, b"hello\ndone\n"), err
        payload = bytes(range(256)) * 4096 * 4  # 4 MB: back-pressure through TLS, nothing lost
        code, out, err = await run("socat", "-t", "10", "-", f"TCP:{echo_address}:9000", stdin=payload)
        assert code == 0 and out == payload + b"done\n", (len(out), err)
    finally:
        await redis.stop()
        await echo.stop()


async def test_the_gateway_refuses_peers_without_a_valid_node_certificate(pair: MeshPair, web_pod: int,
                                                                          keep_alive_pod: int, tmp_path: Path):
    port = free_port()
    address = pair.serve("web", port, keep_alive_pod)
    pair.serve("web-b", free_port(), web_pod)
    await wait_port(port, address)
    code, out, err = await run("curl", "-sS", "--max-time", "10", f"http://{address}:{port}/")
    assert code == 0 and out == b"hello from b0\n", err  # A's sidecar now holds a pooled connection to B
    line = f"CONNECT 127.0.0.1:{web_pod}\n"
    # the control: node A's own certificate is let through
    assert await eventually(lambda: _answers_ok(pair, line, *node_a_cert(pair)))
    # no client certificate
    assert "OK" not in (await s_client(pair, line)).splitlines()
    # a node certificate from another CA
    other = make_cluster_ca(datetime.datetime.now(datetime.UTC))
    cert, key = issue(other, "node-a")
    assert "OK" not in (await s_client(pair, line, *await _pem_args(tmp_path / "other", cert, key))).splitlines()
    # an expired certificate from the cluster CA
    cert, key = issue(pair.ca, "node-a", validity=datetime.timedelta(hours=1),
                      now=datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=3))
    answer = await s_client(pair, line, *await _pem_args(tmp_path / "expired", cert, key))
    assert "OK" not in answer.splitlines(), answer
    assert cert.not_valid_after_utc < datetime.datetime.now(datetime.UTC)  # refused for that, all else is valid
    # revoked (its node was deleted): the trust file the agent writes, reloaded by B's sidecar
    revoked = pair.certs["node-a"].serial_number
    await asyncio.to_thread(write_trust, pair.nodes["node-b"].mesh_dir, revoked=[revoked], nodes=["node-a", "node-b"])
    assert await eventually(lambda: _refused(pair, line, *node_a_cert(pair)))
    assert "is revoked" in pair.nodes["node-b"].sidecar.output()
    # and the connection A's sidecar pooled before is cut: node A reaches node B's pods no more
    code, out, err = await run("curl", "-sS", "--max-time", "10", f"http://{address}:{port}/")
    assert out != b"hello from b0\n", (code, out, err)
    # a node that no longer exists
    cert, key = issue(pair.ca, "node-gone")
    assert "OK" not in (await s_client(pair, line, *await _pem_args(tmp_path / "gone", cert, key))).splitlines()
    assert "node node-gone no longer exists" in pair.nodes["node-b"].sidecar.output()


async def test_a_sidecar_leaves_a_gateway_whose_node_was_deleted(pair: MeshPair, keep_alive_pod: int):
    port = free_port()
    address = pair.serve("web", port, keep_alive_pod)
    await wait_port(port, address)
    code, out, err = await run("curl", "-sS", "--max-time", "10", f"http://{address}:{port}/")
    assert out == b"hello from b0\n", err  # pooled: A's sidecar keeps its connection to B's gateway
    await asyncio.to_thread(write_trust, pair.nodes["node-a"].mesh_dir, revoked=[], nodes=["node-a"])

    async def left() -> bool:
        _, out, _ = await run("curl", "-sS", "--max-time", "10", f"http://{address}:{port}/")
        return out != b"hello from b0\n"

    assert await eventually(left)
    assert "node node-b no longer exists" in pair.nodes["node-a"].sidecar.output()


async def test_the_gateway_is_no_open_relay(pair: MeshPair, web_pod: int):
    pair.serve("web", free_port(), web_pod)
    assert await eventually(lambda: _answers_ok(pair, f"CONNECT 127.0.0.1:{web_pod}\n", *node_a_cert(pair)))
    metrics = pair.nodes["node-b"].metrics  # something listens there, but it is no pod endpoint
    for line in (f"CONNECT 127.0.0.1:{metrics}\n", "CONNECT 192.0.2.1:80\n", "GET / HTTP/1.1\n"):
        answer = await s_client(pair, line, *node_a_cert(pair))
        assert "OK" not in answer.splitlines() and "ERR" in answer, (line, answer)
    assert (await metric(pair, "node-b"))['meshd_sidecar_mesh_gateway_refused_total{reason="target"}'] >= 3


async def test_rotation_keeps_open_connections_and_new_ones_use_the_new_certificate(pair: MeshPair,
                                                                                     tmp_path: Path):
    echo_port = free_port()
    echo = await spawn(["socat", f"TCP-LISTEN:{echo_port},bind=127.0.0.1,fork,reuseaddr", "SYSTEM:'cat'"],
                       tmp_path / "echo.log")
    try:
        await wait_port(echo_port)
        address = pair.serve("echo", 9001, echo_port, port_name="tcp-echo")
        await wait_port(9001, address)
        reader, writer = await asyncio.open_connection(address, 9001)
        writer.write(b"before\n")
        assert await asyncio.wait_for(reader.readline(), 10) == b"before\n"
        old = await _served_serial(pair)
        assert old == pair.certs["node-b"].serial_number
        for name in ("node-a", "node-b"):  # both nodes rotate, as their agents do at 2/3 of the life
            pair.certs[name] = await asyncio.to_thread(write_node, pair.nodes[name].mesh_dir, pair.ca, name)

        async def rotated() -> bool:
            return await _served_serial(pair) == pair.certs["node-b"].serial_number

        assert await eventually(rotated)
        writer.write(b"after\n")  # the connection made with the old certificates still works
        assert await asyncio.wait_for(reader.readline(), 10) == b"after\n"
        writer.close()
        code, out, err = await run("socat", "-t", "5", "-", f"TCP:{address}:9001", stdin=b"new\n")
        assert (code, out) == (0, b"new\n"), err
        assert f"certificate {pair.certs['node-a'].serial_number:x}" in pair.nodes["node-a"].sidecar.output()
    finally:
        await echo.stop()


# --- helpers --------------------------------------------------------------------------------------------------


async def metric(pair: MeshPair, node: str) -> dict[str, float]:
    """The node sidecar's /metrics as series -> value."""
    _, out, _ = await run("curl", "-s", f"http://127.0.0.1:{pair.nodes[node].metrics}/metrics")
    return {line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
            for line in out.decode().splitlines() if line and not line.startswith("#")}


async def _pem_args(directory: Path, cert: x509.Certificate, key) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    certfile, keyfile = await asyncio.to_thread(files, directory, "client", cert, key)
    return ("-cert", certfile, "-key", keyfile)


async def _answers_ok(pair: MeshPair, line: str, *args: str) -> bool:
    return "OK" in (await s_client(pair, line, *args)).splitlines()


async def _refused(pair: MeshPair, line: str, *args: str) -> bool:
    return not await _answers_ok(pair, line, *args)


async def _served_serial(pair: MeshPair) -> int:
    """The serial of the certificate B's gateway presents to a new connection."""
    ca = str(pair.nodes["node-a"].mesh_dir / "ca.pem")
    _, out, _ = await run("openssl", "s_client", "-connect", pair.gateway, "-tls1_3", "-CAfile", ca,
                          *node_a_cert(pair), stdin=b"", timeout=20)
    match = re.search(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out, re.S)
    assert match, out
    return x509.load_pem_x509_certificate(match.group(0)).serial_number

