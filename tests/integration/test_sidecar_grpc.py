"""HTTP/2 and gRPC through the sidecar with clients and servers nobody here wrote: grpcio (generic handlers),
curl --http2-prior-knowledge and h2load, against grpcio replicas and a plain h2c server as host processes.
Every test runs with both HTTP/2 codecs (MESHD_H2_CODEC: nghttp2, the pure-Python h2).

The sidecar runs in `--listen/--service` mode, fed by the fake agent (bench/proxy/fake_agent.py); the Service
port is named `grpc`, so the port is HTTP/2 without detection.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import shutil
import socket
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "proxy"))
import fake_agent
from harness import Process, free_port, run, spawn, start_sidecar, wait_port

from meshd.model.endpoints import ServiceKey

grpc = pytest.importorskip("grpc")
H2DIR = Path(__file__).resolve().parents[2] / "bench" / "h2"
KEY = ServiceKey("default", "echo")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@pytest.fixture(params=["native", "h2"], autouse=True)
def h2_codec(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The sidecars this test starts use this codec (CI builds the native one: missing there, it fails)."""
    if request.param == "native":
        try:
            import sidecar.h2.native  # noqa: F401
        except ImportError as e:
            if os.environ.get("MESHD_REQUIRE_DOCKER") == "1":  # (CI)
                raise
            pytest.skip(f"the nghttp2 codec is not built ({e}): pip install -e . with libnghttp2-dev and gcc")
    monkeypatch.setenv("MESHD_H2_CODEC", request.param)
    return str(request.param)


@dataclass
class Mesh:
    agent: fake_agent.FakeAgent
    sidecar: Process
    port: int
    metrics: int
    backends: dict[str, tuple[Process, int]]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


async def start_replica(kind: str, name: str, log: Path) -> tuple[Process, int]:
    port = free_port()
    proc = await spawn([sys.executable, str(H2DIR / f"{kind}_backend.py"), name, f"127.0.0.1:{port}"], log)
    await wait_port(port)
    return proc, port


async def start_mesh(tmp_path: Path, *, kind: str = "grpc", replicas: int = 3, annotations=None) -> Mesh:
    agent = fake_agent.FakeAgent(heartbeat=1.0)
    api = await agent.start()
    backends = {f"r{i}": await start_replica(kind, f"r{i}", tmp_path / f"r{i}.log") for i in range(replicas)}
    agent.set_service(
        fake_agent.service("echo", None, 80, port_name="grpc", annotations=annotations),
        [fake_agent.endpoint(n, "127.0.0.1", p, port_name="grpc") for n, (_, p) in backends.items()],
    )
    port = free_port()
    sidecar, mport = await start_sidecar(
        api, tmp_path / "sidecar.log", "--listen", f"127.0.0.1:{port}", "--service", "echo",
        "--id", "test-sidecar", listen_port=port,
    )  # fmt: skip
    mesh = Mesh(agent, sidecar, port, mport, backends)
    try:
        await known_to(mport, replicas)
    except BaseException:
        await stop_mesh(mesh)
        raise
    return mesh


async def known_to(metrics_port: int, replicas: int) -> None:
    """Until the sidecar knows the Service (its port's protocol and endpoints): a --listen sidecar listens at
    once, and a connection it takes before then is detected by its first bytes (an Upgrade: h2c as HTTP/1)."""
    for _ in range(300):
        _, metrics, _ = await run("curl", "-s", f"http://127.0.0.1:{metrics_port}/metrics")
        if f'meshd_sidecar_endpoints{{service="default/echo",state="ready"}} {replicas}.0'.encode() in metrics:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the sidecar never learned the Service")


async def stop_mesh(mesh: Mesh) -> None:
    code = await mesh.sidecar.stop()
    for proc, _ in mesh.backends.values():
        await proc.stop()
    await mesh.agent.stop()
    assert code == 0, mesh.sidecar.output()
    assert "Traceback" not in mesh.sidecar.output(), mesh.sidecar.output()


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Mesh]:
    m = await start_mesh(tmp_path)
    yield m
    await stop_mesh(m)


def unary(channel: grpc.Channel, method: str = "Unary"):  # type: ignore[no-untyped-def]
    return channel.unary_unary(f"/test.Echo/{method}")


async def test_unary_calls_over_one_channel_spread_across_three_replicas(mesh: Mesh, h2_codec: str):
    _, metrics, _ = await run("curl", "-s", f"http://127.0.0.1:{mesh.metrics}/metrics")
    codec = re.search(r'meshd_sidecar_h2_codec_info\{codec="([^"]+)"\} 1', metrics.decode())
    assert codec and codec.group(1).startswith("nghttp2" if h2_codec == "native" else "h2 "), codec

    def calls() -> collections.Counter[bytes]:
        with grpc.insecure_channel(mesh.target) as channel:
            call = unary(channel)
            return collections.Counter(call(b"", timeout=10) for _ in range(60))

    served = await asyncio.to_thread(calls)
    assert sum(served.values()) == 60
    assert set(served) == {b"r0", b"r1", b"r2"}, served


async def test_bidi_stream_of_1000_messages_arrives_intact_and_in_order(mesh: Mesh):
    messages = [b"message %d " % i + b"x" * (i % 300) for i in range(1000)]

    def bidi() -> list[bytes]:
        with grpc.insecure_channel(mesh.target) as channel:
            return list(channel.stream_stream("/test.Echo/Bidi")(iter(messages), timeout=30))

    assert await asyncio.to_thread(bidi) == messages


async def test_server_streaming_and_large_messages(mesh: Mesh):
    def calls() -> tuple[list[bytes], bytes]:
        with grpc.insecure_channel(mesh.target) as channel:
            stream = list(channel.unary_stream("/test.Echo/ServerStream")(b"2000", timeout=30))
            big = unary(channel, "Echo")(b"z" * 3_000_000, timeout=30)  # far past every flow-control window
            return stream, big

    stream, big = await asyncio.to_thread(calls)
    assert len(stream) == 2000
    assert [m.split()[1] for m in stream] == [b"%d" % i for i in range(2000)]
    assert big == b"z" * 3_000_000


async def test_trailers_with_a_non_ok_status_reach_the_client(mesh: Mesh):
    def call() -> grpc.RpcError:
        with grpc.insecure_channel(mesh.target) as channel:
            with pytest.raises(grpc.RpcError) as info:
                unary(channel, "Fail")(b"9", timeout=10)  # FAILED_PRECONDITION
            return info.value

    error = await asyncio.to_thread(call)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert re.fullmatch(r"r\d fails on purpose with FAILED_PRECONDITION", error.details())
    _, out, _ = await run("curl", "-s", f"http://127.0.0.1:{mesh.metrics}/metrics")
    assert re.search(
        r'meshd_sidecar_grpc_responses_total\{grpc_code="FAILED_PRECONDITION",grpc_status="9",service="default/echo"\} 1',
        out.decode(),
    ), out.decode()


async def test_unavailable_is_retried_within_the_budget_then_reaches_the_client(mesh: Mesh):
    def call() -> grpc.RpcError:
        with grpc.insecure_channel(mesh.target) as channel:
            with pytest.raises(grpc.RpcError) as info:
                unary(channel, "Fail")(b"14", timeout=10)  # every replica answers UNAVAILABLE
            return info.value

    error = await asyncio.to_thread(call)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    _, out, _ = await run("curl", "-s", f"http://127.0.0.1:{mesh.metrics}/metrics")
    retries = re.search(r'meshd_sidecar_retries_total\{service="default/echo"\} (\d+)', out.decode())
    assert retries and int(retries.group(1)) >= 1, out.decode()


async def test_replica_stopped_under_steady_load_costs_no_failed_call(mesh: Mesh):
    """SIGTERM to a replica (grpcio's graceful stop: GOAWAY, in-flight calls finish, connects refused) while
    4 threads call over one channel; the agent removes the endpoint a second later, as it would."""
    stop = threading.Event()
    ok = collections.Counter[bytes]()
    failures: list[str] = []

    def load(channel: grpc.Channel) -> None:
        call = unary(channel)
        while not stop.is_set():
            try:
                ok[call(b"", timeout=10)] += 1
            except grpc.RpcError as e:
                failures.append(f"{e.code()}: {e.details()}")

    with grpc.insecure_channel(mesh.target) as channel:
        threads = [threading.Thread(target=load, args=(channel,)) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            await asyncio.sleep(1.0)
            before = sum(ok.values())
            proc, _ = mesh.backends.pop("r1")
            await proc.stop()  # SIGTERM, waits for the exit
            await asyncio.sleep(0.5)
            mesh.agent.remove(KEY, "r1")
            await asyncio.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                await asyncio.to_thread(t.join)
    _, metrics, _ = await run("curl", "-s", f"http://127.0.0.1:{mesh.metrics}/metrics")
    lines = [
        ln
        for ln in metrics.decode().splitlines()
        if ln.startswith(("meshd_sidecar_grpc", "meshd_sidecar_upstream"))
    ]
    assert not failures, str(failures[:5]) + "\n" + "\n".join(lines)
    assert before > 0 and sum(ok.values()) > before
    assert ok[b"r1"] > 0 and ok[b"r0"] > 0 and ok[b"r2"] > 0


async def test_removed_endpoint_drains_under_load_with_no_failed_call(mesh: Mesh):
    """A rollout's step: the endpoint leaves the registry while calls run; its in-flight calls finish, it gets
    GOAWAY, and the drain ack reaches the agent."""
    stop = threading.Event()
    failures: list[str] = []
    count = [0]

    def load(channel: grpc.Channel) -> None:
        call = unary(channel, "Slow")
        while not stop.is_set():
            try:
                call(b"0.05", timeout=10)
                count[0] += 1
            except grpc.RpcError as e:
                failures.append(f"{e.code()}: {e.details()}")

    with grpc.insecure_channel(mesh.target) as channel:
        threads = [threading.Thread(target=load, args=(channel,)) for _ in range(6)]
        for t in threads:
            t.start()
        try:
            await asyncio.sleep(0.5)
            mesh.agent.remove(KEY, "r0")
            await asyncio.wait_for(mesh.agent.drain_event.wait(), 10)
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                await asyncio.to_thread(t.join)
    assert not failures, failures[:5]
    assert count[0] > 0
    assert any(d.get("endpoint") == "r0" for d in mesh.agent.drains), mesh.agent.drains


async def test_no_endpoint_is_unavailable_with_a_message(mesh: Mesh):
    mesh.agent.remove(KEY, "r0", "r1", "r2")
    await asyncio.sleep(0.5)

    def call() -> grpc.RpcError:
        with grpc.insecure_channel(mesh.target) as channel:
            with pytest.raises(grpc.RpcError) as info:
                unary(channel)(b"", timeout=10)
            return info.value

    error = await asyncio.to_thread(call)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error.details() == "no ready endpoints for default/echo"


async def test_deadline_from_the_service_annotation(tmp_path: Path):
    m = await start_mesh(tmp_path, replicas=1, annotations={"meshd.io/timeout": "300ms"})
    try:

        def call() -> grpc.RpcError:
            with grpc.insecure_channel(m.target) as channel:
                with pytest.raises(grpc.RpcError) as info:
                    unary(channel, "Slow")(b"3", timeout=20)
                return info.value

        error = await asyncio.to_thread(call)
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert error.details() == "gateway timeout: default/echo did not answer within 0.3s"
    finally:
        await stop_mesh(m)


def read_frames(sock: socket.socket) -> list[tuple[int, int, bytes]]:
    """(type, stream, payload) of every frame the peer sends until it closes."""
    data = b""
    sock.settimeout(10)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    frames = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        frames.append((data[3], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF, data[9 : 9 + length]))
        data = data[9 + length :]
    return frames


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x00\x04\x04\x00\x00\x00\x00\x01abcd",  # SETTINGS on a stream
        b"garbage that is not a frame at all, repeated " * 4,  # a frame length past the limit
        b"\x00\x00\x00\x01\x05\x00\x00\x00\x02",  # HEADERS on an even (server) stream id
    ],
)
async def test_garbage_after_the_preface_gets_goaway_and_the_sidecar_serves_on(mesh: Mesh, garbage: bytes):
    def exchange() -> list[tuple[int, int, bytes]]:
        with socket.create_connection(("127.0.0.1", mesh.port)) as sock:
            sock.sendall(PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" + garbage)
            return read_frames(sock)

    frames = await asyncio.to_thread(exchange)
    goaways = [payload for kind, _, payload in frames if kind == 7]
    assert goaways, frames
    assert int.from_bytes(goaways[-1][4:8], "big") in (1, 6)  # PROTOCOL_ERROR (FRAME_SIZE_ERROR for length)

    def call() -> bytes:
        with grpc.insecure_channel(mesh.target) as channel:
            return unary(channel)(b"", timeout=10)  # type: ignore[no-any-return]

    assert await asyncio.to_thread(call) in (b"r0", b"r1", b"r2")


async def test_a_silent_client_does_not_hold_another(mesh: Mesh):
    silent = socket.create_connection(("127.0.0.1", mesh.port))
    half = socket.create_connection(("127.0.0.1", mesh.port))
    half.sendall(PREFACE[:10])
    try:

        def call() -> bytes:
            with grpc.insecure_channel(mesh.target) as channel:
                return unary(channel)(b"", timeout=10)  # type: ignore[no-any-return]

        assert await asyncio.to_thread(call) in (b"r0", b"r1", b"r2")
    finally:
        silent.close()
        half.close()


# --- a plain h2c backend: curl and h2load ----------------------------------------------------------------
@pytest.fixture
async def h2c_mesh(tmp_path: Path) -> AsyncIterator[Mesh]:
    m = await start_mesh(tmp_path, kind="h2c")
    yield m
    await stop_mesh(m)


@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
async def test_curl_http2_prior_knowledge(h2c_mesh: Mesh):
    # one URL per curl: curl 7.88 fails a second request on a reused prior-knowledge connection with
    # "Error in the HTTP2 framing layer" against any h2c server (bench/h2/h2c_backend.py directly, too)
    for path, expect in (("/hello", r"r\d /hello\n"), ("/big?size=1000000", "x{1000000}")):
        code, out, err = await run(
            "curl", "-sS", "--http2-prior-knowledge", "-w", "\n%{http_version} %{http_code}",
            f"http://{h2c_mesh.target}{path}",
        )  # fmt: skip
        assert code == 0, err
        text = out.decode(errors="replace")
        assert re.fullmatch(expect + r"\n2 200", text), text[:200]


@pytest.mark.skipif(not shutil.which("h2load"), reason="needs h2load (nghttp2-client)")
async def test_h2load_many_streams_over_few_connections(h2c_mesh: Mesh):
    code, out, err = await run(
        "h2load", "-n", "2000", "-c", "4", "-m", "10", f"http://{h2c_mesh.target}/", timeout=120
    )
    text = out.decode()
    assert code == 0, text + err.decode()
    assert re.search(
        r"requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored", text
    ), text
    assert "status codes: 2000 2xx" in text, text
    _, metrics, _ = await run("curl", "-s", f"http://127.0.0.1:{h2c_mesh.metrics}/metrics")
    attempts = re.findall(
        r'meshd_sidecar_upstream_attempts_total\{endpoint="(r\d)",outcome="success",service="default/echo"\} (\d+)',
        metrics.decode(),
    )
    assert {e for e, n in attempts if float(n) > 0} == {"r0", "r1", "r2"}, attempts


async def test_curl_with_an_http1_upgrade_to_h2c(h2c_mesh: Mesh):
    code, out, err = await run(
        "curl", "-sS", "--http2", "-w", "\n%{http_version} %{http_code}", f"http://{h2c_mesh.target}/up"
    )  # fmt: skip
    assert code == 0, err
    assert re.fullmatch(rb"r\d /up\n\n2 200", out), out
    code, out, err = await run(
        "curl", "-sS", "--http1.1", "-w", "\n%{http_code}", f"http://{h2c_mesh.target}/"
    )
    assert out.endswith(b"\n400") and b"this port speaks HTTP/2 (h2c)" in out, out


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def test_a_client_that_does_not_read_holds_no_one_else_and_is_not_buffered(h2c_mesh: Mesh):
    """Back-pressure end to end: a 200 MB response to a client that never reads stops at the flow-control
    windows (the sidecar acknowledges the endpoint's data only as the client takes it); others go on."""
    from h2.config import H2Configuration
    from h2.connection import H2Connection

    rss0 = _rss_mb(h2c_mesh.sidecar.pid)
    sock = socket.create_connection(("127.0.0.1", h2c_mesh.port))
    conn = H2Connection(H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":authority", "echo"),
                          (":path", "/big?size=200000000")], end_stream=True)  # fmt: skip
    sock.sendall(conn.data_to_send())
    try:
        await asyncio.sleep(1.0)  # the endpoint sends what the windows allow, then waits
        for _ in range(3):
            code, out, err = await run(
                "curl", "-sS", "--http2-prior-knowledge", f"http://{h2c_mesh.target}/other"
            )
            assert code == 0 and re.fullmatch(rb"r\d /other\n", out), (out, err)
        assert _rss_mb(h2c_mesh.sidecar.pid) - rss0 < 50
    finally:
        sock.close()
