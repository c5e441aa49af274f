"""HTTP/1 as real servers speak it: servers nobody here wrote, each a Service behind one node-mode sidecar, each
checked with curl through it (busybox httpd CGI with bare-LF headers, Python's HTTP/1.0 http.server, nginx,
HAProxy in front of http.server, and a scripted raw responder: close-framed, bare-LF, 100 and 103 first)."""

from __future__ import annotations

import asyncio
import random
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "proxy"))
import fake_agent
from harness import Process, free_port, run, spawn, start_sidecar, wait_port

NEEDED = ("curl", "busybox", "nginx", "haproxy", "socat", "bash")
pytestmark = [
    pytest.mark.skipif(not all(shutil.which(n) for n in NEEDED), reason=f"needs {', '.join(NEEDED)}"),
    pytest.mark.asyncio(loop_scope="module"),  # one zoo (and its fake agent) for the module's tests
]

CGI = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello from busybox cgi\\n'\n"

# one connection of the raw responder (socat runs it per connection): reads the request head, answers by path
RAW = r"""#!/bin/bash
read -r method path version
while IFS= read -r line; do [ "$line" = $'\r' ] || [ -z "$line" ] && break; done
case "$path" in
  /close)     printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nframed by close\n' ;;
  /lf)        printf 'HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 9\nX-Raw: lf\n\nbare lf!\n' ;;
  /lf-close)  printf 'HTTP/1.0 200 OK\nContent-Type: text/plain\n\nbare lf, framed by close\n' ;;
  /interim)   printf 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n'
              printf 'HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\nafter interim' ;;
  /interim-lf) printf 'HTTP/1.1 103 Early Hints\nLink: </a.css>\n\nHTTP/1.1 200 OK\nContent-Length: 2\n\nok' ;;
  /http10)    printf 'HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhttp10' ;;
  *)          printf 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n' ;;
esac
"""

NGINX = """
worker_processes 1; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/nginx.err warn;
events {{ worker_connections 64; }}
http {{ access_log off; client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};
  uwsgi_temp_path {tmp}; scgi_temp_path {tmp};
  server {{ listen {addr}:{port}; location / {{ return 200 "hello from nginx\\n"; }} }} }}
"""

HAPROXY = """
global
  maxconn 100
defaults
  mode http
  timeout connect 3s
  timeout client 10s
  timeout server 10s
frontend fe
  bind {addr}:{port}
  default_backend be
backend be
  server s1 {backend}
"""


@dataclass
class Zoo:
    sport: int
    addresses: dict[str, str]  # Service name -> its address
    sidecar: Process

    def url(self, service: str, path: str = "/") -> str:
        return f"http://{self.addresses[service]}:{self.sport}{path}"


def loopback() -> str:
    return f"127.215.{random.randint(1, 254)}.{random.randint(2, 254)}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def zoo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Zoo]:
    tmp = tmp_path_factory.mktemp("zoo")
    procs: list[Process] = []
    servers: dict[str, tuple[str, int]] = {}

    async def start(name: str, args: list[str], addr: str, port: int) -> None:
        procs.append(await spawn(args, tmp / f"{name}.log"))
        await wait_port(port, addr)
        servers[name] = (addr, port)

    www = tmp / "www"
    (www / "cgi-bin").mkdir(parents=True)
    (www / "index.html").write_text("busybox index\n")
    cgi = www / "cgi-bin" / "x.cgi"
    cgi.write_text(CGI)
    cgi.chmod(0o755)
    addr, port = loopback(), free_port()
    await start("busybox", ["busybox", "httpd", "-f", "-p", f"{addr}:{port}", "-h", str(www)], addr, port)

    files = tmp / "files"
    files.mkdir()
    (files / "hello.txt").write_text("hello from http.server\n")
    addr, port = loopback(), free_port()
    pyhttp = [sys.executable, "-m", "http.server", "--bind", addr, "--directory", str(files), str(port)]
    await start("pyhttp", pyhttp, addr, port)

    addr, port = loopback(), free_port()
    (tmp / "nginx.conf").write_text(NGINX.format(tmp=tmp, addr=addr, port=port))
    await start("nginx", ["nginx", "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "nginx.err")], addr, port)

    addr, port = loopback(), free_port()
    pyaddr, pyport = servers["pyhttp"]
    (tmp / "haproxy.cfg").write_text(HAPROXY.format(addr=addr, port=port, backend=f"{pyaddr}:{pyport}"))
    await start("haproxy", ["haproxy", "-db", "-f", str(tmp / "haproxy.cfg")], addr, port)

    raw = tmp / "raw.sh"
    raw.write_text(RAW)
    raw.chmod(0o755)
    addr, port = loopback(), free_port()
    socat = ["socat", f"TCP-LISTEN:{port},bind={addr},reuseaddr,fork", f"EXEC:{raw}"]
    await start("raw", socat, addr, port)

    agent = fake_agent.FakeAgent()
    api = await agent.start()
    sport = free_port()
    addresses = {}
    for name, (baddr, bport) in servers.items():
        addresses[name] = loopback()
        agent.set_service(fake_agent.service(name, addresses[name], sport),
                          [fake_agent.endpoint(f"{name}-0", baddr, bport)])  # fmt: skip
    sidecar, _ = await start_sidecar(api, tmp / "sidecar.log")
    try:
        for address in addresses.values():
            await wait_port(sport, address)
        yield Zoo(sport, addresses, sidecar)
    finally:
        code = await sidecar.stop()
        for proc in procs:
            await proc.stop()
        await agent.stop()
    assert code == 0, sidecar.output()
    assert "Traceback" not in sidecar.output(), sidecar.output()


async def curl(*args: str) -> tuple[int, bytes, bytes]:
    return await run("curl", "-sS", "--max-time", "10", *args, timeout=20)


def split(out: bytes) -> tuple[bytes, bytes]:
    head, _, body = out.partition(b"\r\n\r\n")
    return head, body


@pytest.mark.parametrize(
    ("service", "path", "body"),
    [
        ("busybox", "/cgi-bin/x.cgi", b"hello from busybox cgi\n"),  # bare-LF headers from the CGI script
        ("busybox", "/index.html", b"busybox index\n"),
        ("pyhttp", "/hello.txt", b"hello from http.server\n"),  # HTTP/1.0, closes after each response
        ("nginx", "/", b"hello from nginx\n"),
        ("haproxy", "/hello.txt", b"hello from http.server\n"),
        ("raw", "/close", b"framed by close\n"),
        ("raw", "/lf", b"bare lf!\n"),
        ("raw", "/lf-close", b"bare lf, framed by close\n"),
        ("raw", "/interim", b"after interim"),
        ("raw", "/interim-lf", b"ok"),
        ("raw", "/http10", b"http10"),
    ],
)
async def test_server_zoo_through_the_sidecar(zoo: Zoo, service: str, path: str, body: bytes):
    code, out, err = await curl("-i", zoo.url(service, path))
    assert code == 0, err
    head, got = split(out)
    assert head.startswith(b"HTTP/1.1 200"), out
    assert got == body
    assert b"\n" not in head.replace(b"\r\n", b"")  # the client gets CRLF line ends whatever the server sent
    # twice on one keep-alive connection, as curl does: the second is answered as the first
    code, out, err = await curl(zoo.url(service, path), zoo.url(service, path), "-w", "|%{num_connects}")
    assert code == 0, err
    assert out == body + b"|1" + body + b"|0"


async def test_interim_responses_are_absorbed_and_headers_kept(zoo: Zoo):
    code, out, err = await curl("-i", zoo.url("raw", "/lf"))
    assert code == 0, err
    head, _ = split(out)
    assert b"\r\nX-Raw: lf" in head and b"Content-Length: 9" in head
    code, out, err = await curl("-i", zoo.url("raw", "/interim"))
    assert out.count(b"HTTP/1.1 ") == 1 and out.startswith(b"HTTP/1.1 200"), out


async def test_post_with_expect_to_an_http10_server(zoo: Zoo, tmp_path: Path):
    """http.server has no POST: it answers 501 after the head and closes with the body unread (a reset). Its
    answer reaches the client even when the sidecar's write of the body meets the reset before it reads."""
    (tmp_path / "body").write_bytes(b"q" * 1_000_000)
    for _ in range(8):
        code, out, err = await curl("-i", "-H", "Expect: 100-continue", "--data-binary", f"@{tmp_path / 'body'}",
                                    zoo.url("pyhttp", "/hello.txt"))  # fmt: skip
        assert code in (0, 55), err  # (55: curl could not send all of its body: the server had closed)
        assert b"HTTP/1.1 501" in out, out


async def test_smuggling_and_garbage_from_clients_get_400_and_close(zoo: Zoo):
    host, port = zoo.addresses["nginx"], zoo.sport
    for request in (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",  # bare LF from a client: refused (strict client side)
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    ):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        data = await asyncio.wait_for(reader.read(), 10)  # the sidecar closes: read() ends
        writer.close()
        assert data.startswith(b"HTTP/1.1 400"), (request, data)
        assert b"connection: close" in data.lower()
    code, out, _ = await curl(zoo.url("nginx"))
    assert (code, out) == (0, b"hello from nginx\n")
