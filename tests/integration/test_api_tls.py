"""HTTPS and plain HTTP on the API's one port, tried with real clients (curl, openssl s_client, the Python
Kubernetes client) against `meshd agent` as its own process (uvloop, as users run it), and the listener's
hand-over alone (in this loop) for clients that send garbage or nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from meshd.api.certs import api_tls, wanted_names
from meshd.api.listen import Listener
from tests.integration.agent_harness import eventually, free_port
from tests.integration.test_store_agent import AgentProcess

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
GARBAGE = b"\x16\xff\xff\x00\x04abcd" + os.urandom(64)  # a handshake record of no TLS version


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, timeout=60, check=False, env=env, stdin=subprocess.DEVNULL)


async def arun(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(run, *argv, env=env)


async def curl(url: str, *args: str) -> tuple[int, str]:
    done = await arun("curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args, url)
    body, _, code = done.stdout.decode().rpartition("\n")
    return int(code or 0), body or done.stderr.decode()


@pytest.fixture
async def agent(tmp_path: Path) -> Any:
    started = AgentProcess(tmp_path / "state", tmp_path / "agent.log")
    await started.start()
    yield started
    await started.stop()


async def test_https_with_the_agents_ca_and_http_on_one_port_across_a_restart(agent, tmp_path):
    state = agent.state_dir
    port = agent.api.rpartition(":")[2]
    https = f"https://127.0.0.1:{port}"
    token = (state / "token").read_text().strip()
    bearer = ("-H", f"Authorization: Bearer {token}")
    ca = str(state / "ca.pem")
    made = await arun(sys.executable, "-m", "meshd.cli", "kubeconfig", "--state-dir", str(state), "--api", agent.api,
                      env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert made.returncode == 0, made.stderr
    config = yaml.safe_load(made.stdout)
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == https
    assert base64.b64decode(cluster["certificate-authority-data"]) == (state / "ca.pem").read_bytes()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_bytes(made.stdout)

    code, body = await curl(f"{https}/version", "--cacert", ca, *bearer)
    assert code == 200 and json.loads(body)["gitVersion"].endswith("-meshd"), body
    code, body = await curl(f"https://localhost:{port}/version", "--cacert", ca, *bearer)
    assert code == 200, body
    code, body = await curl(f"{https}/api/v1/pods", "--cacert", ca)
    assert code == 401 and json.loads(body)["reason"] == "Unauthorized", body
    code, body = await curl(f"{https}/version", *bearer)  # no CA: the agent's certificate is its own
    assert code == 0 and "certificate" in body, body
    code, body = await curl(f"{agent.api}/metrics")  # Prometheus and today's clients: plain http, same port
    assert code == 200 and "# TYPE" in body, body
    code, body = await curl(f"{agent.api}/api/v1/pods", *bearer)
    assert code == 200, body

    handshake = await arun("openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", ca,
                           "-verify_return_error", "-verify_ip", "127.0.0.1", "-alpn", "http/1.1")
    out = handshake.stdout.decode()
    assert "Verify return code: 0 (ok)" in out and "ALPN protocol: http/1.1" in out, out
    old = await arun("openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert old.returncode != 0 and "Cipher is (NONE)" in old.stdout.decode(), old  # TLS 1.2 or later only

    def list_pods() -> list:
        from kubernetes import client
        from kubernetes import config as kube_config
        return client.CoreV1Api(kube_config.new_client_from_config(str(kubeconfig))).list_namespaced_pod(
            "default").items

    assert await asyncio.to_thread(list_pods) == []  # the Python client verifies the CA

    before = {name: (state / name).read_bytes() for name in ("ca.pem", "api.pem", "api-key.pem")}
    await agent.stop()
    await agent.start()
    assert {name: (state / name).read_bytes() for name in before} == before  # reused, not made again
    assert await asyncio.to_thread(list_pods) == []  # the kubeconfig made before the restart still works


async def test_clients_sending_tls_garbage_or_nothing_are_closed_and_the_others_served(agent):
    host, port = "127.0.0.1", int(agent.api.rpartition(":")[2])
    ca = str(agent.state_dir / "ca.pem")
    token = (agent.state_dir / "token").read_text().strip()
    silent = [socket.create_connection((host, port)) for _ in range(50)]
    stalled_tls = socket.create_connection((host, port))
    stalled_tls.sendall(b"\x16\x03\x01")  # a handshake that never goes on
    try:
        answer = await _closed_by_server(port, GARBAGE)
        assert len(answer) <= 7, answer  # a TLS alert at most, then the server closes
        for _ in range(3):
            code, body = await curl(f"https://{host}:{port}/version", "--cacert", ca, "-H",
                                    f"Authorization: Bearer {token}")
            assert code == 200, body
            code, body = await curl(f"http://{host}:{port}/healthz")
            assert code == 200 and body == "ok", body
    finally:
        for conn in (*silent, stalled_tls):
            conn.close()


@pytest.fixture
async def listener(tmp_path):
    """The API's listener alone, with a short head timeout, serving a one-route app."""
    _, context = await asyncio.to_thread(api_tls, tmp_path, wanted_names("127.0.0.1"))
    app = web.Application()
    async def scheme(request: web.Request) -> web.Response:
        return web.Response(text=request.scheme)

    app.router.add_get("/scheme", scheme)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tcp = Listener(runner, tls=context, head_timeout=0.3, limit=8)
    port = free_port()
    await tcp.start_tcp("127.0.0.1", port)
    tcp.port = port  # type: ignore[attr-defined]
    tcp.ca = tmp_path / "ca.pem"  # type: ignore[attr-defined]
    yield tcp
    tcp.close()
    await runner.cleanup()


async def _closed_by_server(port: int, first: bytes) -> bytes:
    """Connects, sends `first`, and reads until the server closes (never the client)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(first)
    try:
        return await asyncio.wait_for(reader.read(), 60)
    finally:
        writer.close()


@pytest.mark.usefixtures("no_blocking_calls")
async def test_a_silent_client_and_a_stalled_handshake_are_closed_at_the_head_timeout(listener):
    silent, stalled = await asyncio.gather(_closed_by_server(listener.port, b""),
                                           _closed_by_server(listener.port, b"\x16\x03\x01"))
    assert silent == b"" and stalled == b""
    await eventually(lambda: listener.connections == 0)


@pytest.mark.usefixtures("no_blocking_calls")
async def test_tls_garbage_is_closed_and_both_schemes_still_served_at_the_cap(listener):
    assert len(await _closed_by_server(listener.port, GARBAGE)) <= 7  # a TLS alert at most
    conns = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(20)]  # beyond the cap
    try:
        context = ssl.create_default_context(cafile=str(listener.ca))
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port, ssl=context)
        writer.write(b"GET /scheme HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await reader.read()).endswith(b"https")
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"GET /scheme HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await reader.read()).endswith(b"http")
        writer.close()
        assert listener.connections <= listener.limit and listener.evicted > 0
    finally:
        for conn in conns:
            conn.close()
