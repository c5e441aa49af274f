"""Who may drive the agent, and how much they may send, tried with real clients (curl, kubectl, the Python
Kubernetes client, `runuser -u nobody`) against a real agent (process driver)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.integration.agent_harness import agent_options, eventually, started_agent

pytestmark = pytest.mark.slow

SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: %s}\nspec:\n  selector: {app: x}\n  ports: [{port: 80}]\n"
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: shell
        command: ["sh", "-c", "env; exec sleep 600"]
        env: [{name: OWN, value: mine}]
"""


def run(*argv: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=60, check=False, env=env)


async def arun(*argv: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(run, *argv, stdin=stdin, env=env)


async def curl(url: str, *args: str, stdin: bytes | None = None) -> tuple[int, dict]:
    """(HTTP status, JSON body or {}) from curl."""
    done = await arun("curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args, url, stdin=stdin)
    body, _, code = done.stdout.decode().rpartition("\n")
    try:
        data = json.loads(body) if body.strip() else {}
    except ValueError:
        data = {"text": body}
    return int(code or 0), data


@pytest.fixture
async def agent(agent_id, monkeypatch):
    monkeypatch.setenv("MESHD_TEST_AGENT_SECRET", "hunter2")  # the agent's own env: never a pod's
    state = Path(tempfile.mkdtemp(prefix="meshd-auth-", dir="/tmp"))
    state.chmod(0o755)  # others may look inside: only the socket's and the token's own modes keep them out
    options = agent_options(state, agent_id, driver="process")
    options.state_dir = str(state)
    agent = await started_agent(options)
    agent.url = f"http://{options.api}"  # type: ignore[attr-defined]
    yield agent
    await agent.close(stop_pods=True)
    shutil.rmtree(state, ignore_errors=True)


def bearer(agent) -> tuple[str, str]:
    return ("-H", f"Authorization: Bearer {agent.token}")


async def test_writes_need_the_token_a_json_or_yaml_type_and_no_foreign_origin(agent):
    yaml_type = ("-H", "Content-Type: application/yaml")
    apply = f"{agent.url}/v1/apply"
    code, body = await curl(apply, "-X", "POST", *yaml_type, "--data-binary", "@-", stdin=(SERVICE % "a").encode())
    assert code == 401 and body["kind"] == "Status" and body["reason"] == "Unauthorized", body
    assert body["apiVersion"] == "v1" and body["status"] == "Failure" and body["code"] == 401
    code, body = await curl(apply, "-X", "POST", *bearer(agent), "-H", "Content-Type: text/plain",
                            "--data-binary", "@-", stdin=(SERVICE % "b").encode())
    assert code == 415, body
    code, body = await curl(apply, "-X", "POST", *bearer(agent), *yaml_type, "-H", "Origin: http://evil.example",
                            "--data-binary", "@-", stdin=(SERVICE % "c").encode())
    assert code == 403 and body["reason"] == "Forbidden", body
    code, body = await curl(f"{agent.url}/api/v1/namespaces/default/services", *bearer(agent))
    assert code == 200 and body["items"] == []  # nothing refused changed anything
    code, body = await curl(apply, "-X", "POST", *bearer(agent), *yaml_type, "--data-binary", "@-",
                            stdin=(SERVICE % "d").encode())
    assert code == 200 and body["results"][0]["action"] == "created", body
    for path in ("/healthz", "/metrics", "/v1/prometheus/targets"):  # open for reading, and only those
        assert (await curl(agent.url + path))[0] == 200
    for path in ("/api/v1/pods", "/v1/watch/endpoints?sidecar=fake", "/apis/apps/v1/deployments"):
        assert (await curl(agent.url + path))[0] == 401


async def test_another_user_gets_neither_the_tcp_api_nor_the_socket(agent):
    if shutil.which("runuser") is None:
        pytest.skip("runuser (util-linux) is not installed")
    state = Path(agent.options.state_dir)
    sock = state / "api.sock"
    assert oct(sock.stat().st_mode & 0o777) == "0o600" and oct((state / "token").stat().st_mode & 0o777) == "0o600"
    as_nobody = ("runuser", "-u", "nobody", "--")
    tcp = await arun(*as_nobody, "curl", "-sS", "-w", "\n%{http_code}", "-X", "POST", "-H",
                     "Content-Type: application/yaml", "--data-binary", SERVICE % "x", f"{agent.url}/v1/apply")
    assert tcp.stdout.decode().rsplit("\n", 1)[-1] == "401", tcp
    token = await arun(*as_nobody, "cat", str(state / "token"))
    assert token.returncode != 0 and b"Permission denied" in token.stderr
    local = await arun(*as_nobody, "curl", "-sS", "--unix-socket", str(sock), "http://localhost/api/v1/pods")
    assert local.returncode == 7, local  # 7: could not connect
    if Path("/usr/bin/python3").exists():  # why: the socket's mode (curl does not say)
        probe = await arun(*as_nobody, "/usr/bin/python3", "-c", "import socket, sys; s = socket.socket(socket.AF_UNIX)"
                           f"\ntry: s.connect({str(sock)!r})\nexcept PermissionError: sys.exit(13)")
        assert probe.returncode == 13, probe
    owner = await arun("curl", "-sS", "-w", "\n%{http_code}", "--unix-socket", str(sock),
                       "http://localhost/api/v1/pods")
    assert owner.stdout.decode().rsplit("\n", 1)[-1] == "200", owner  # the owner needs no token there


async def test_meshd_kubeconfig_authenticates_kubectl_the_python_client_and_the_cli(agent, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "HOME": str(tmp_path)}
    env.pop("MESHD_TOKEN", None)
    env.pop("MESHD_API", None)
    # no --api: the address the agent recorded in its state dir (it serves on a port of its own here)
    made = await arun(sys.executable, "-m", "meshd.cli", "kubeconfig", "--state-dir", agent.options.state_dir,
                      env=env)
    assert made.returncode == 0, made.stderr
    config = tmp_path / "kubeconfig"
    config.write_bytes(made.stdout)
    assert f"server: {agent.url.replace('http://', 'https://')}" in made.stdout.decode()
    assert agent.token in made.stdout.decode()
    if shutil.which("kubectl"):
        health = await arun("kubectl", "--kubeconfig", str(config), "get", "--raw", "/healthz", env=env)
        assert health.stdout.strip() == b"ok", health
    from kubernetes import client
    from kubernetes import config as kube_config
    from kubernetes.client.rest import ApiException

    def list_pods(path: Path) -> list:
        api = client.CoreV1Api(kube_config.new_client_from_config(str(path)))
        return api.list_namespaced_pod("default").items

    assert await asyncio.to_thread(list_pods, config) == []
    wrong = tmp_path / "wrong"
    wrong.write_text(made.stdout.decode().replace(agent.token, "not-the-token"))
    with pytest.raises(ApiException) as refused:
        await asyncio.to_thread(list_pods, wrong)
    assert refused.value.status == 401
    # meshd's own CLI: the token from KUBECONFIG (its server is this agent), else nothing
    got = await arun(sys.executable, "-m", "meshd.cli", "--api", agent.url, "get", "pods",
                     env={**env, "KUBECONFIG": str(config)})
    assert got.returncode == 0, got.stderr
    got = await arun(sys.executable, "-m", "meshd.cli", "--api", agent.url, "get", "pods",
                     env={**env, "KUBECONFIG": str(wrong)})
    assert got.returncode == 1 and b"Unauthorized" in got.stderr, got


async def test_oversized_heads_and_bodies_are_refused(agent):
    host, port = agent.options.api.split(":")
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (4 * 1024 * 1024) + b"\r\n\r\n"

    def send_head() -> bytes:
        """Sends the head while reading the answer, as a client must when a server answers early."""
        reply = bytearray()
        with socket.create_connection((host, int(port)), timeout=10) as conn:

            def read() -> None:
                try:
                    while chunk := conn.recv(65536):
                        reply.extend(chunk)
                except OSError:
                    pass

            reader = threading.Thread(target=read)
            reader.start()
            try:
                conn.sendall(head)
            except OSError:
                pass
            reader.join(10)
        return bytes(reply)

    reply = await asyncio.to_thread(send_head)
    assert reply.startswith((b"HTTP/1.1 431", b"HTTP/1.0 431")), reply[:100]
    big = b"# padding\n" * (420 * 1024)  # 4.1 MiB
    code, body = await curl(f"{agent.url}/v1/apply", "-X", "POST", *bearer(agent), "-H",
                            "Content-Type: application/yaml", "--data-binary", "@-", stdin=big)
    assert code == 413 and body["reason"] == "RequestEntityTooLarge", body
    assert (await curl(f"{agent.url}/healthz"))[0] == 200


async def test_a_billion_laughs_and_huge_replicas_are_refused_and_change_nothing(agent):
    laughs = ["apiVersion: v1", "kind: Service", "metadata:", "  name: lol", "  annotations:",
              '    x0: &a0 "' + "lol" * 100 + '"']
    laughs += [f"    x{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    laughs += ["spec: {selector: {app: x}, ports: [{port: 80}], x: *a11}"]
    yaml_post = ("-X", "POST", *bearer(agent), "-H", "Content-Type: application/yaml", "--data-binary", "@-")
    started = time.monotonic()
    code, body = await curl(f"{agent.url}/v1/apply", *yaml_post, stdin="\n".join(laughs).encode())
    print(f"billion laughs ({len(chr(10).join(laughs))} bytes) refused in {time.monotonic() - started:.3f}s")
    assert code == 422 and "after YAML aliases are expanded" in body["message"], body
    code, body = await curl(f"{agent.url}/v1/apply", *yaml_post,
                            stdin=DEPLOYMENT.replace("REPLICAS", "3000000000000").encode())
    assert code == 422 and "spec.replicas" in body["message"], body
    code, body = await curl(f"{agent.url}/apis/apps/v1/deployments", *bearer(agent))
    assert body["items"] == [] and [k for k in agent.controller.objects if k[0] != "StorageClass"] == []
    code, body = await curl(f"{agent.url}/v1/apply", *yaml_post, stdin=DEPLOYMENT.replace("REPLICAS", "1").encode())
    assert code == 200, body
    scale = f"{agent.url}/apis/apps/v1/namespaces/default/deployments/web/scale"
    code, body = await curl(scale, "-X", "PATCH", *bearer(agent), "-H", "Content-Type: application/merge-patch+json",
                            "--data-binary", '{"spec": {"replicas": 3000000000000}}')
    assert code == 422 and body["reason"] == "Invalid", body
    assert body["details"]["causes"][0]["field"] == "spec.replicas"
    code, body = await curl(f"{agent.url}/apis/apps/v1/namespaces/default/deployments/web", *bearer(agent))
    assert body["spec"]["replicas"] == 1


async def test_a_process_pod_gets_path_home_and_its_own_env_never_the_agents(agent):
    code, _ = await curl(f"{agent.url}/v1/apply", "-X", "POST", *bearer(agent), "-H",
                         "Content-Type: application/yaml", "--data-binary", "@-",
                         stdin=DEPLOYMENT.replace("REPLICAS", "1").encode())
    assert code == 200
    pod = (await eventually(lambda: [w for w in agent.controller.pods.values() if w.ready or w.phase == "Running"]))[0]

    async def logged_env() -> dict[str, str]:
        _, log = await curl(f"{agent.url}/api/v1/namespaces/default/pods/{pod.name}/log", *bearer(agent))
        return dict(line.split("=", 1) for line in log.get("text", "").splitlines() if "=" in line)

    env: dict[str, str] = {}
    for _ in range(100):
        env = await logged_env()
        if "OWN" in env:
            break
        await asyncio.sleep(0.1)
    assert env.get("OWN") == "mine" and env.get("PATH") and env.get("HOME") and env.get("POD_IP"), env
    assert "MESHD_TEST_AGENT_SECRET" not in env and "MESHD_TOKEN" not in env
    assert not {k for k in env if k.startswith(("PYTEST", "PYTHONPATH"))}, env


async def test_slow_connections_beyond_the_cap_leave_the_api_answering(agent):
    host, port = agent.options.api.split(":")
    conns: list[socket.socket] = []
    try:
        for _ in range(2000):  # each sends half a head, then nothing (slowloris)
            conn = socket.socket()
            conn.setblocking(False)
            try:
                conn.connect((host, int(port)))
            except BlockingIOError:
                pass
            conns.append(conn)
            if len(conns) % 100 == 0:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        for conn in conns:
            try:
                conn.send(b"GET /api/v1/pods HTTP/1.1\r\nHost: x\r\n")
            except OSError:
                pass
        await asyncio.sleep(0.5)
        code, body = await curl(f"{agent.url}/api/v1/namespaces/default/pods", *bearer(agent))
        assert code == 200, body
        tcp = agent.api.listeners[0]
        assert tcp.connections <= tcp.limit and tcp.evicted > 0
    finally:
        for conn in conns:
            conn.close()


async def test_the_node_sidecar_watches_with_the_token_from_its_environment(agent_id, tmp_path):
    from tests.integration.agent_harness import free_port

    options = agent_options(tmp_path, agent_id, driver="process", sidecar=True,
                            sidecar_metrics=f"127.0.0.1:{free_port()}")
    agent = await started_agent(options)
    try:
        await eventually(lambda: agent.drain.sidecars, timeout=30)  # its watch was let in
        cmdline = Path(f"/proc/{agent.sidecar.pid}/cmdline").read_bytes()
        assert agent.token.encode() not in cmdline
        environ = Path(f"/proc/{agent.sidecar.pid}/environ").read_bytes().split(b"\0")
        assert f"MESHD_TOKEN={agent.token}".encode() in environ
    finally:
        await agent.close(stop_pods=True)
