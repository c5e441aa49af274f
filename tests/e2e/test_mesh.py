"""The mesh end to end, as a user runs it: `meshd agent` / `meshd up` processes, their node sidecar, real
containers, and clients nobody here wrote (curl, hey) reaching Services at their addresses."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import RUN_ID
from tests.integration.agent_harness import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("hey") is None or shutil.which("curl") is None,
                                 reason="hey and curl are needed (apt-get install hey curl)")]

ROOT = Path(__file__).resolve().parents[2]

WEB = textwrap.dedent("""\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec:
      replicas: 3
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec:
          terminationGracePeriodSeconds: 2
          containers:
          - name: web
            image: meshd/busybox:latest
            imagePullPolicy: IfNotPresent
            command: ["/bin/sh", "-c", "mkdir -p /www && hostname > /www/index.html && echo ok > /www/ready && exec httpd -f -p 8080 -h /www"]
            ports: [{containerPort: 8080, name: http}]
            readinessProbe:
              httpGet: {path: /ready, port: http}
              periodSeconds: 0.2
              failureThreshold: 1
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web}
    spec:
      selector: {app: web}
      ports: [{name: http, port: 80, targetPort: http}]
    """)


class Meshd:
    """A `meshd agent` or `meshd up` process on free ports, and the CLI pointed at it."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.api = f"127.0.0.1:{free_port()}"
        self.dns = f"127.0.0.1:{free_port(udp=True)}"
        self.agent_id = f"{RUN_ID}-mesh-{free_port()}"
        self.state = tmp_path / "state"
        self.log = tmp_path / "agent.log"
        self.args = args
        self.sidecar_metrics = f"127.0.0.1:{free_port()}"
        self.process: subprocess.Popen | None = None

    def start(self) -> Meshd:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "meshd.cli", *self.args, "--api", self.api, "--dns", self.dns,
                 "--state-dir", str(self.state), "--mdns", "off", "--agent-id", self.agent_id,
                 "--sidecar-metrics", self.sidecar_metrics, "--backoff-initial", "1"],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.until(lambda: self.get("/healthz", raw=True) == "ok", what="the agent's API")
        return self

    @property
    def token(self) -> str:
        return (self.state / "token").read_text().strip()

    def get(self, path: str, *, raw: bool = False):
        try:
            request = urllib.request.Request(f"http://{self.api}{path}",
                                             headers={"Authorization": f"Bearer {self.token}"})
            with urllib.request.urlopen(request, timeout=2) as reply:
                body = reply.read().decode()
        except OSError:
            return None
        return body if raw else json.loads(body)

    def cli(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "meshd.cli", "--api", self.api, *args], check=True,
                              capture_output=True, text=True, cwd=ROOT, env=self.cli_env()).stdout

    def cli_env(self) -> dict[str, str]:
        return {**os.environ, "MESHD_TOKEN": self.token}

    def service_address(self, name: str) -> str:
        return self.until(lambda: (self.get(f"/api/v1/namespaces/default/services/{name}") or {})
                          .get("spec", {}).get("clusterIP"), what=f"service {name}")

    def ready_endpoints(self, name: str) -> int:
        subsets = (self.get(f"/api/v1/namespaces/default/endpoints/{name}") or {}).get("subsets") or []
        return sum(len(subset.get("addresses") or []) for subset in subsets)

    def until(self, check, *, timeout: float = 60, what: str = ""):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"meshd exited: {self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; {self.diagnosis()}")

    def diagnosis(self) -> str:
        """What a failed wait needs to be understood: the agent's view and both logs' tails."""
        pods = subprocess.run([sys.executable, "-m", "meshd.cli", "--api", self.api, "get", "pods,endpoints",
                               "-o", "wide"], capture_output=True, text=True, cwd=ROOT, env=self.cli_env())
        sidecar_log = self.state / "sidecar.log"
        return (f"meshd get pods,endpoints: {pods.stdout}{pods.stderr}\n"
                f"agent log: {self.log.read_text()[-3000:]}\n"
                f"sidecar log: {sidecar_log.read_text()[-2000:] if sidecar_log.exists() else '(none)'}")

    def stop(self, sig: int = signal.SIGINT) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=60)


def curl(url: str) -> str | None:
    result = subprocess.run(["curl", "-s", "-m", "3", "-f", url], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def hey(url: str, seconds: int) -> subprocess.Popen:
    return subprocess.Popen(["hey", "-z", f"{seconds}s", "-c", "4", url], stdout=subprocess.PIPE, text=True)


def load_result(load: subprocess.Popen) -> tuple[dict[str, int], str]:
    """hey's status-code distribution, and its whole output for the failure message."""
    output = load.communicate(timeout=120)[0]
    return {code: int(n) for code, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", output)}, output


def containers_of(agent_id: str) -> list[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.meshd.agent={agent_id}"],
                         capture_output=True, text=True).stdout
    return out.split()


def test_the_example_app_calls_its_api_by_name_through_the_mesh(tmp_path, python_image, pause_image):
    meshd = Meshd(tmp_path, "up", "-f", str(ROOT / "examples" / "hello-mesh.yaml")).start()
    try:
        address = meshd.service_address("frontend")
        meshd.until(lambda: meshd.ready_endpoints("api") == 3 and meshd.ready_endpoints("frontend") == 2,
                    what="every api and frontend replica ready")
        answers = [meshd.until(lambda: curl(f"http://{address}/"), what="the frontend") for _ in range(30)]
        assert all(a.startswith("frontend frontend-") and " -> api api-" in a for a in answers), answers
        # balanced per request across the replicas of both Services
        assert len({a.split(" -> api ")[0] for a in answers}) == 2, answers
        assert len({a.split(" -> api ")[1] for a in answers}) >= 2, answers
        assert "api-" in meshd.cli("get", "pods")
    finally:
        meshd.stop(signal.SIGINT)
    assert meshd.process.returncode == 0
    assert containers_of(meshd.agent_id) == []  # Ctrl-C on `meshd up` removes everything


def test_balancing_readiness_replacement_and_an_agent_that_dies(tmp_path, busybox_image, pause_image):
    manifest = tmp_path / "web.yaml"
    manifest.write_text(WEB)
    meshd = Meshd(tmp_path, "agent").start()
    try:
        assert "created" in meshd.cli("apply", "-f", str(manifest))
        address = meshd.service_address("web")
        url = f"http://{address}/index.html"

        # requests spread across the three replicas
        meshd.until(lambda: len({curl(url) for _ in range(30)} - {None}) == 3, what="three replicas serving")

        # a replica made unready receives nothing
        pods = json.loads(meshd.cli("get", "pods", "-o", "json"))["items"]
        sick = pods[0]["metadata"]["name"]
        sick_id = pods[0]["status"]["containerStatuses"][0]["containerID"].removeprefix("docker://")
        subprocess.run(["docker", "exec", sick_id, "rm", "/www/ready"], check=True)
        meshd.until(lambda: sick in json.dumps(
            (meshd.get("/api/v1/namespaces/default/endpoints/web") or {}).get("subsets", [{}])[0]
            .get("notReadyAddresses", [])), what="the replica to turn unready")
        assert sick not in {curl(url) for _ in range(30)}

        # a replica killed under steady load costs no request
        load = hey(url, 6)
        time.sleep(2)
        victim = pods[1]["status"]["containerStatuses"][0]["containerID"].removeprefix("docker://")
        subprocess.run(["docker", "kill", victim], check=True, capture_output=True)
        codes, output = load_result(load)
        assert set(codes) == {"200"} and "Error distribution" not in output, output

        # the agent dies: the sidecar keeps serving; a new agent adopts everything and the sidecar follows it
        meshd.stop(signal.SIGKILL)
        assert {curl(url) for _ in range(10)} - {None}
        before = sorted(containers_of(meshd.agent_id))
        meshd.start()
        meshd.until(lambda: "2/3" in meshd.cli("get", "deployments"), what="the deployment to be adopted")
        assert sorted(containers_of(meshd.agent_id)) == before  # adopted, nothing started twice
        # the same address, unless another agent took this agent's host slot while it was down: then its Service
        # has one of the slot it holds now (meshd.slotreaddress)
        url = f"http://{meshd.service_address('web')}/index.html"
        meshd.cli("scale", "deployment/web", "--replicas", "4")
        subprocess.run(["docker", "exec", sick_id, "sh", "-c", "echo ok > /www/ready"], check=True)
        meshd.until(lambda: len({curl(url) for _ in range(40)} - {None}) == 4, what="four replicas serving")
    finally:
        meshd.stop(signal.SIGINT)
        for container in containers_of(meshd.agent_id):
            subprocess.run(["docker", "rm", "-f", container], capture_output=True)
        sidecars = subprocess.run(["pgrep", "-f", f"sidecar.main.*{meshd.sidecar_metrics}"], capture_output=True,
                                  text=True).stdout.split()
        for pid in sidecars:
            os.kill(int(pid), signal.SIGKILL)
