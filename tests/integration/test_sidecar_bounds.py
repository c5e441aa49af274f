"""The sidecar bounds what clients send (issue 14): request heads in size (431) and time (408, slowloris), client
connections per listener (accepting pauses at the cap and when fds run out), with real sockets and curl."""

from __future__ import annotations

import asyncio
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "proxy"))
import backend
import fake_agent
from harness import Process, free_port, run, spawn, wait_port

pytestmark = pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")


@dataclass
class Edge:
    sidecar: Process
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def start(tmp_path: Path, *flags: str, prefix: tuple[str, ...] = ()) -> AsyncIterator[Edge]:
    agent = fake_agent.FakeAgent()
    api = await agent.start()
    runner, bport = await backend.start("b0")
    agent.set_service(fake_agent.service("web", None, 80), [fake_agent.endpoint("b0", "127.0.0.1", bport)])
    port, mport = free_port(), free_port()
    cmd = [*prefix, sys.executable, "-m", "sidecar", "--api", api, "--metrics", f"127.0.0.1:{mport}",
           "--listen", f"127.0.0.1:{port}", "--service", "web", *flags]  # fmt: skip
    sidecar = await spawn(cmd, tmp_path / "sidecar.log")
    try:
        await wait_port(mport)
        await wait_port(port)
        for _ in range(100):  # the Service known (its port's protocol too: before, connections are detected)
            code, out, _ = await run("curl", "-s", f"http://127.0.0.1:{port}/")
            if out == b"hello from b0\n":
                break
            await asyncio.sleep(0.1)
        yield Edge(sidecar, port)
    finally:
        code = await sidecar.stop()
        await runner.cleanup()
        await agent.stop()
    assert code == 0, sidecar.output()
    assert "Traceback" not in sidecar.output(), sidecar.output()


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[Edge]:
    async for e in start(tmp_path, "--header-timeout", "2"):
        yield e


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def send_and_read(port: int, data: bytes) -> bytes:
    """Send `data` (as much as the sidecar takes before it closes) and read what comes back until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        try:
            await asyncio.wait_for(writer.drain(), 30)
        except ConnectionError:
            pass
        return await asyncio.wait_for(reader.read(), 30)
    except ConnectionError:
        return b""
    finally:
        writer.close()


async def test_huge_request_heads_get_431_and_memory_stays_flat(edge: Edge):
    await run("curl", "-s", edge.url)  # warm up
    before = rss_mb(edge.sidecar.pid)
    big = b"GET / HTTP/1.1\r\nHost: web\r\n" + b"X-Big: " + b"a" * 4_000_000 + b"\r\n\r\n"
    answer = await send_and_read(edge.port, big)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    many = b"GET / HTTP/1.1\r\nHost: web\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(10_000)) + b"\r\n"
    answer = await send_and_read(edge.port, many)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    few_but_many = (
        b"GET / HTTP/1.1\r\nHost: web\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n"
    )
    answer = await send_and_read(edge.port, few_but_many)  # small, but more than 100 fields
    assert answer.startswith(b"HTTP/1.1 431") and b"more than 100 header fields" in answer, answer[:200]
    # 50 MB of headers over ten connections, five at a time
    chunk = b"GET / HTTP/1.1\r\nHost: web\r\n" + b"X-Big: " + b"b" * 5_000_000 + b"\r\n\r\n"
    for _ in range(2):
        answers = await asyncio.gather(*(send_and_read(edge.port, chunk) for _ in range(5)))
        assert all(a.startswith(b"HTTP/1.1 431") or a == b"" for a in answers)
    after = rss_mb(edge.sidecar.pid)
    assert after - before < 20, (before, after)  # far less than the 50 MB sent
    code, out, _ = await run(
        "curl", "-sS", "-H", "X-Fine: " + "c" * 8_000, "-H", "X-Fine2: " + "c" * 8_000, edge.url
    )
    assert (code, out) == (0, b"hello from b0\n")  # a big but allowed head passes


async def test_slowloris_connections_are_closed_while_others_are_served(edge: Edge):
    async def slow() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        head = b"GET / HTTP/1.1\r\nHost: web\r\nX-Slow: " + b"z" * 200
        answer = asyncio.create_task(reader.read())
        try:
            for byte in head:  # a byte every 0.2 s: always busy, never done
                if answer.done():
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.2)
            try:
                return await asyncio.wait_for(answer, 30)
            except TimeoutError:
                return b"no answer; sidecar log:\n" + edge.sidecar.output().encode()
        finally:
            writer.close()

    slows = [asyncio.create_task(slow()) for _ in range(20)]
    await asyncio.sleep(0.5)
    for _ in range(5):  # served while the slow ones hold their connections
        code, out, _ = await run("curl", "-sS", "--max-time", "10", edge.url)
        assert (code, out) == (0, b"hello from b0\n")
    answers = await asyncio.gather(*slows)
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408"), answer  # closed long before the 200 bytes were sent
        assert b"request head not received within 2s" in answer


async def test_connection_cap_pauses_accepting_until_one_closes(tmp_path: Path):
    async for edge in start(tmp_path, "--max-connections", "5"):
        held = [await asyncio.open_connection("127.0.0.1", edge.port) for _ in range(5)]
        for reader, writer in held:  # each of the five is served
            writer.write(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
            assert (await reader.readuntil(b"hello from b0\n")).startswith(b"HTTP/1.1 200")
        # a sixth connects (the kernel's backlog) but is not accepted while five are open
        reader6, writer6 = await asyncio.open_connection("127.0.0.1", edge.port)
        writer6.write(b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader6.read(1), 1.0)
        held[0][1].close()  # one closes: the sixth is accepted and answered
        answer = await asyncio.wait_for(reader6.read(), 10)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        writer6.close()
        for _, writer in held[1:]:
            writer.close()
        assert "connections, the cap" in edge.sidecar.output()


async def test_fd_exhaustion_pauses_accepting_and_recovers(tmp_path: Path):
    if not shutil.which("prlimit"):
        pytest.skip("prlimit is not installed")
    async for edge in start(tmp_path, prefix=("prlimit", "--nofile=64:64")):
        socks = []
        for _ in range(100):  # more than the sidecar has fds for: the rest wait in the backlog
            s = socket.socket()
            s.setblocking(False)
            try:
                await asyncio.get_running_loop().sock_connect(s, ("127.0.0.1", edge.port))
            except OSError:
                s.close()
                continue
            socks.append(s)
        for _ in range(100):
            if "cannot accept" in edge.sidecar.output():
                break
            await asyncio.sleep(0.1)
        assert "cannot accept (Too many open files)" in edge.sidecar.output()
        for s in socks:
            s.close()
        code, out, err = await run("curl", "-sS", "--max-time", "20", "--retry", "3", edge.url)
        assert (code, out) == (0, b"hello from b0\n"), err
