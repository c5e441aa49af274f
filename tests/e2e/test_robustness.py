"""The agent as an attacker or an unlucky operator meets it (issue 14), with real `meshd agent` processes on the
process driver: a billion replicas, slow connections up to the agent's fd limit, its sidecar killed while it
has no fd left, and two agents on one host. Every check is an outcome a user sees: the API and DNS answer, the
memory stays bounded, the agent recovers without a restart."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.agent_harness import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300),
              pytest.mark.skipif(shutil.which("dig") is None or shutil.which("curl") is None,
                                 reason="dig and curl are needed")]

ROOT = Path(__file__).resolve().parents[2]
MAX_RSS = 300 * 2**20

BIG = textwrap.dedent("""\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: big}
    spec:
      replicas: %d
      selector: {matchLabels: {app: big}}
      template:
        metadata: {labels: {app: big}}
        spec:
          terminationGracePeriodSeconds: 1
          containers:
          - {name: main, image: sleep, command: ["sleep", "3600"]}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: big}
    spec:
      selector: {app: big}
      ports: [{port: 80, targetPort: 8080}]
    """)

# a web server that answers with the agent's name: each agent of a host must serve its own
WEB = textwrap.dedent("""\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec:
      replicas: 2
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec:
          terminationGracePeriodSeconds: 1
          containers:
          - name: web
            image: python
            command: ["%s", "-c", "%s"]
            env: [{name: ANSWER, value: "%s"}]
            ports: [{containerPort: 8080, name: http}]
            readinessProbe: {tcpSocket: {port: http}, periodSeconds: 0.2}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web}
    spec:
      selector: {app: web}
      ports: [{name: http, port: 80, targetPort: http}]
    """)
SERVER = ("import http.server, os; A = os.environ['ANSWER'].encode()\\n"
          "class H(http.server.BaseHTTPRequestHandler):\\n"
          "    def do_GET(self):\\n"
          "        self.send_response(200); self.send_header('Content-Length', str(len(A))); self.end_headers()\\n"
          "        self.wfile.write(A)\\n"
          "    def log_message(self, *a): pass\\n"
          "http.server.ThreadingHTTPServer((os.environ['POD_IP'], 8080), H).serve_forever()")


def web(answer: str) -> str:
    return WEB % (sys.executable, SERVER, answer)


class AgentProcess:
    """A `meshd agent --driver process` on free ports; `nofile` lowers its fd limit."""

    def __init__(self, tmp_path: Path, name: str, *args: str, nofile: int | None = None,
                 state: Path | None = None) -> None:
        self.api = f"127.0.0.1:{free_port()}"
        self.dns_port = free_port(udp=True)
        self.state = state or tmp_path / f"state-{name}"
        self.log = tmp_path / f"agent-{name}.log"
        self.args = args
        self.nofile = nofile
        self.process: subprocess.Popen | None = None

    def start(self, *, wait: bool = True) -> AgentProcess:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "meshd.cli", "agent", "--driver", "process", "--api", self.api,
                 "--dns", f"127.0.0.1:{self.dns_port}", "--state-dir", str(self.state), "--mdns", "off",
                 "--backoff-initial", "1", *self.args],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
        if self.nofile is not None:  # the agent's own limit, lowered before it opens more than a few
            resource.prlimit(self.process.pid, resource.RLIMIT_NOFILE, (self.nofile, self.nofile))
        if wait:
            self.until(lambda: self.get("/healthz")[0] in (200, 503), what="the agent's API")
        return self

    def token(self) -> str | None:
        """The API's bearer token where the agent writes one (STATE/token)."""
        try:
            return (self.state / "token").read_text().strip() or None
        except OSError:
            return None

    def get(self, path: str, timeout: float = 5) -> tuple[int, str]:
        token = self.token()
        request = urllib.request.Request(f"http://{self.api}{path}",
                                         headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError as error:
            return 0, str(error)

    def cli(self, *args: str, stdin: str | None = None) -> str:
        token = self.token()
        return subprocess.run([sys.executable, "-m", "meshd.cli", "--api", self.api, *args], check=True,
                              input=stdin, capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, **({"MESHD_TOKEN": token} if token else {})}).stdout

    def apply(self, manifest: str) -> str:
        return self.cli("apply", "-f", "-", stdin=manifest)

    def pods(self) -> list[dict]:
        status, body = self.get("/api/v1/namespaces/default/pods")
        return json.loads(body)["items"] if status == 200 else []

    def dig(self, name: str) -> str:
        return subprocess.run(["dig", "+short", "+time=2", "+tries=1", "@127.0.0.1", "-p", str(self.dns_port),
                               f"{name}.default.svc.cluster.local"], check=False, capture_output=True,
                              text=True).stdout.strip()

    def rss(self) -> int:
        assert self.process is not None
        text = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) * 1024  # type: ignore[union-attr]

    def sidecar_pid(self) -> int | None:
        try:
            return int(json.loads((self.state / "sidecar.json").read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None

    def sidecar_metrics(self) -> str:
        found = re.findall(r"sidecar metrics on (\S+)", self.log.read_text())
        assert found, self.log.read_text()[-2000:]
        return found[-1]

    def until(self, check, *, timeout: float = 90, what: str = ""):
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"the agent exited: {self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what} (last {value!r}); log: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """Stops the agent (SIGTERM), then the pods and sidecar it leaves running, by their recorded pids."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for record in (self.state / "process" / "process-driver" / "records").glob("*.json"):
            pid = json.loads(record.read_text()).get("pid")
            if pid:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
        pid = self.sidecar_pid()
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass


@pytest.fixture
def agents(tmp_path: Path):
    started: list[AgentProcess] = []

    def make(name: str, *args: str, **kw) -> AgentProcess:
        agent = AgentProcess(tmp_path, name, *args, **kw)
        started.append(agent)
        return agent

    yield make
    for agent in started:
        agent.stop()


def test_a_billion_replicas_leave_the_agent_answering_and_scale_recovers(agents) -> None:
    agent = agents("big", "--max-pods", "20", "--no-sidecar").start()
    assert "created" in agent.apply(BIG % 1_000_000_000)
    peak = 0

    def answering() -> bool:  # API and DNS answer while it works, with bounded memory
        nonlocal peak
        peak = max(peak, agent.rss())
        assert agent.get("/healthz") == (200, "ok")
        assert agent.dig("big").startswith("127.")
        return True

    def settled() -> bool:
        answering()
        phases = [p["status"]["phase"] for p in agent.pods()]
        return phases.count("Running") == 20 and phases.count("Pending") == 20

    agent.until(settled, what="20 pods running and 20 Pending")
    pending = next(p for p in agent.pods() if p["status"]["phase"] == "Pending")
    assert "Too many pods" in agent.cli("describe", "pod", pending["metadata"]["name"])
    assert "node pod limit reached" in agent.cli("get", "events")
    for _ in range(20):  # it stays so: no growth while a billion replicas are wanted
        answering()
        time.sleep(0.1)
    assert len(agent.pods()) == 40

    # a restart loads the valid Deployment (nothing dropped) and stays up
    agent.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    agent.process.wait(timeout=60)  # type: ignore[union-attr]
    agent.start()
    agent.until(settled, what="the restarted agent back at 20 running and 20 Pending")
    assert "1000000000" in agent.cli("get", "deployment", "big", "-o", "jsonpath={.spec.replicas}")

    agent.cli("scale", "deployment/big", "--replicas", "2")
    agent.until(lambda: answering() and [p["status"]["phase"] for p in agent.pods()] == ["Running"] * 2,
                what="two pods after the scale down")
    assert peak < MAX_RSS, peak


def test_slow_connections_to_the_fd_limit_and_a_sidecar_killed_meanwhile_then_full_recovery(
        agents, tmp_path: Path) -> None:
    agent = agents("slow", nofile=512).start()
    agent.apply(web("slow-agent"))
    address = agent.until(lambda: agent.dig("web"), what="the Service's address")
    agent.until(lambda: curl(f"http://{address}/") == "slow-agent", what="the Service through the sidecar")
    agent.until(lambda: agent.get("/healthz") == (200, "ok"), what="healthy")
    pid = agent.process.pid  # type: ignore[union-attr]
    sidecar = agent.sidecar_pid()
    host, port = agent.api.split(":")
    slow: list[socket.socket] = []
    try:
        for _ in range(20_000):  # as many as the agent's fd limit lets it take, and more
            try:
                conn = socket.create_connection((host, int(port)), timeout=5)
            except OSError:
                break
            conn.setblocking(False)
            try:
                conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
            except OSError:
                pass
            slow.append(conn)
            if len(slow) >= 1500:
                break
        assert len(slow) > 512  # past the agent's limit: it had to refuse or hold accepts
        os.kill(sidecar, signal.SIGKILL)  # type: ignore[arg-type]
        time.sleep(3)  # the agent tries to restart it while it has no fd to spare
    finally:
        for conn in slow:
            conn.close()
    agent.until(lambda: agent.get("/healthz") == (200, "ok"), what="healthy again")
    assert agent.sidecar_pid() not in (None, sidecar)
    agent.until(lambda: curl(f"http://{address}/") == "slow-agent", what="the Service served again")
    assert "configured" in agent.apply(web("slow-agent").replace("replicas: 2", "replicas: 3"))
    agent.until(lambda: [p["status"]["phase"] for p in agent.pods()] == ["Running"] * 3, what="a third pod")
    assert agent.dig("web") == address
    assert agent.process.pid == pid and agent.process.poll() is None  # type: ignore[union-attr]  # no restart


def test_two_agents_on_one_host_each_serve_their_own_services(agents, tmp_path: Path) -> None:
    one, two = agents("one").start(), agents("two").start()
    one.apply(web("from-one"))
    two.apply(web("from-two"))
    first = one.until(lambda: one.dig("web"), what="one's Service")
    second = two.until(lambda: two.dig("web"), what="two's Service")
    assert first != second
    one.until(lambda: curl(f"http://{first}/") == "from-one", what="one's Service served by one's pods")
    two.until(lambda: curl(f"http://{second}/") == "from-two", what="two's Service served by two's pods")
    pod_ips = [{p["status"].get("podIP") for p in a.pods()} for a in (one, two)]
    assert not pod_ips[0] & pod_ips[1]
    metrics = {one.sidecar_metrics(), two.sidecar_metrics()}
    assert len(metrics) == 2
    for address in metrics:
        assert "meshd_sidecar" in (curl(f"http://{address}/metrics") or "")
    # a second agent on one state dir is refused, with the reason
    twin = agents("twin", state=one.state).start(wait=False)
    assert twin.process.wait(timeout=60) != 0  # type: ignore[union-attr]
    assert "runs already" in twin.log.read_text()
    assert curl(f"http://{first}/") == "from-one"


def curl(url: str) -> str | None:
    result = subprocess.run(["curl", "-s", "-m", "3", "-f", url], check=False, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None
