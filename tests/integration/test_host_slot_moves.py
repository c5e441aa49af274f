"""Two agents with their own state dirs on one host, the process driver, real sidecars, curl and dig: an agent
restarted while another holds the host slot it had takes another slot, and its stored Services get addresses of
its new range (reachable through the Service address and by name), the other agent's untouched; the old slot's
next owner can have the very addresses the moved agent had. And a sidecar left running by a killed agent keeps
its slot's addresses only until an agent must take that slot (real `meshd agent` processes)."""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from meshd.hostslots import SLOTS, slot_ranges
from meshd.sidecar_process import running_sidecar
from tests.integration.agent_harness import free_port

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]


def web(name: str, site: Path, port: int, driver: str = "process") -> str:
    """A pod serving `site`'s index.html (it names the agent) on `port`, and a Service `name` for it."""
    image, command = ("python", f"exec python3 -m http.server $PORT --bind $POD_IP --directory {site}") if (
        driver == "process") else ("meshd/busybox:latest", f"mkdir -p /www && echo {site.name.removeprefix('site-')} "
                                   f"> /www/index.html && exec httpd -f -p {port} -h /www")
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: {name}, labels: {{app: {name}}}}}
        spec:
          terminationGracePeriodSeconds: 1
          containers:
          - name: main
            image: {image}
            imagePullPolicy: IfNotPresent
            command: ["sh", "-c", "{command}"]
            ports: [{{containerPort: {port}, name: http}}]
            readinessProbe:
              tcpSocket: {{port: http}}
              periodSeconds: 0.2
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}}}
        spec:
          selector: {{app: {name}}}
          ports: [{{name: http, port: 80, targetPort: http}}]
        """)


def site(tmp_path: Path, who: str) -> Path:
    directory = tmp_path / f"site-{who}"
    directory.mkdir()
    (directory / "index.html").write_text(f"{who}\n")
    return directory


def curl(address: str) -> str | None:
    """What a client gets from http://address/ (None: refused, reset, timed out)."""
    done = subprocess.run(["curl", "-sS", "--max-time", "3", f"http://{address}/"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def dig(dns: str, name: str) -> list[str]:
    host, port = dns.rsplit(":", 1)
    done = subprocess.run(["dig", "+short", "+time=2", "+tries=1", f"@{host}", "-p", port,
                           f"{name}.default.svc.cluster.local", "A"], capture_output=True, text=True)
    return done.stdout.split()


def moved_between_slots(tmp_path: Path, agent_id: str, *, driver: str, skip: int = 0) -> None:
    """A takes a slot, stops; B takes that slot; A restarts: another slot, its Service re-addressed and served, B's
    untouched; B stops, C takes the slot and the very address A had; A keeps its new slot across a restart. The
    slots are this test's own (a run dir of its own), the first `skip` held by the test."""
    name = f"slotweb-{secrets.token_hex(3)}"  # one name in every agent: its hash gives the same address per range
    port = free_port()
    run = tmp_path / "run"
    held = hold_slots(run, range(skip))
    a, b, c = (AgentProcess(tmp_path, who, agent_id, run, driver=driver) for who in ("a", "b", "c"))
    try:
        a.start()
        first = a.slot()
        a.apply(web(name, site(tmp_path, "a"), port, driver))
        old = a.serving(name, "a")
        assert ipaddress.IPv4Address(old) in service_range(driver, first)
        a.terminate()  # as `meshd agent` stops: its pod runs on, for it to adopt; its sidecar stops

        b.start(recorded=first)  # the slot A had is free: B takes it, and its Service gets A's old address
        assert b.slot() == first
        b.apply(web(name, site(tmp_path, "b"), port, driver))
        assert b.serving(name, "b") == old  # its pod beside A's, which keeps its address

        a.start()  # A again: its slot is B's now
        second = a.slot()
        assert second != first
        assert f"host slot {first}, which this agent had, is held by another agent" in a.log.read_text()
        new = a.serving(name, "a")  # its pod, adopted, through the Service's new address
        assert ipaddress.IPv4Address(new) in service_range(driver, second)
        assert f"default/{name}: its address {old} is of host slot {first}" in a.log.read_text()
        service = json.loads(a.get(f"/api/v1/namespaces/default/services/{name}") or "{}")
        assert (service["spec"]["clusterIP"], service["spec"]["clusterIPs"]) == (new, [new])
        assert dig(a.dns, name) == [new]
        assert a.until(lambda: "ClusterIPChanged" in a.cli("get", "events").stdout, "the Service's Event")
        assert curl(old) == "b" and b.address(name) == old and dig(b.dns, name) == [old]  # B's: untouched

        b.stop(name)
        c.start(recorded=first)  # a third agent in A's old slot: nothing of A holds its addresses
        assert c.slot() == first
        c.apply(web(name, site(tmp_path, "c"), port, driver))
        assert c.serving(name, "c") == old
        assert curl(new) == "a"

        a.terminate()  # and A keeps its new slot and addresses across a restart
        a.start()
        assert a.slot() == second and a.serving(name, "a") == new
    finally:
        for agent in (a, b, c):
            agent.stop(name)
        for lock in held:
            lock.close()


def test_a_process_agent_moved_to_another_slot_readdresses_its_services(tmp_path: Path, agent_id: str) -> None:
    moved_between_slots(tmp_path, agent_id, driver="process")


@pytest.mark.docker
def test_a_docker_agent_moved_to_another_slot_readdresses_its_services(
        tmp_path: Path, agent_id: str, busybox_image: str, pause_image: str) -> None:
    # the bridge is the host's: slots the host's agents hardly use (their bridge addresses are never this test's
    # agents' to reclaim), and slot numbers no other agent takes between this test's starts
    moved_between_slots(tmp_path, agent_id, driver="docker", skip=SLOTS // 2)


def service_range(driver: str, slot: int) -> ipaddress.IPv4Network:
    ranges = slot_ranges(slot)
    return ipaddress.IPv4Network(ranges.docker_services if driver == "docker" else ranges.process_services)


class AgentProcess:
    """A `meshd agent` process (process driver, its sidecar on), to be killed as a machine kills it."""

    def __init__(self, tmp_path: Path, who: str, agent_id: str, run_dir: Path | None, *,
                 driver: str = "process") -> None:
        self.api, self.dns = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port(udp=True)}"
        self.state = tmp_path / who / "state"
        self.log = tmp_path / f"{who}.log"
        self.agent_id = f"{agent_id}-{who}"
        self.metrics = f"127.0.0.1:{free_port()}"
        self.run_dir = run_dir
        self.driver = driver
        self.process: subprocess.Popen | None = None

    def start(self, *, recorded: int | None = None) -> AgentProcess:
        """Starts the agent; `recorded`: the slot its state dir says it had (so it takes that one while free)."""
        if recorded is not None:
            self.state.mkdir(parents=True, exist_ok=True)
            (self.state / "slot").write_text(f"{recorded}\n")
        env = {**os.environ, **({"MESHD_RUN_DIR": str(self.run_dir)} if self.run_dir is not None else {})}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "meshd.cli", "agent", "--driver", self.driver, "--api", self.api,
                 "--dns", self.dns, "--state-dir", str(self.state), "--mdns", "off", "--agent-id", self.agent_id,
                 "--sidecar-metrics", self.metrics, "--backoff-initial", "1"],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        self.until(lambda: self.get("/healthz") == "ok", "the agent's API")
        return self

    def get(self, path: str) -> str | None:
        done = subprocess.run(["curl", "-sS", "--max-time", "2", "-H",
                               f"Authorization: Bearer {(self.state / 'token').read_text().strip()}"
                               if (self.state / "token").exists() else "X-None: 1", f"http://{self.api}{path}"],
                              capture_output=True, text=True)
        return done.stdout if done.returncode == 0 else None

    def status(self, path: str) -> str:
        """The HTTP status of a GET of `path` ("000": no answer)."""
        return subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", "-H",
                               f"Authorization: Bearer {(self.state / 'token').read_text().strip()}",
                               f"http://{self.api}{path}"], capture_output=True, text=True).stdout

    def cli(self, *args: str, text: str = "", check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "meshd.cli", "--api", self.api, *args], input=text,
                              check=check, capture_output=True, text=True, cwd=ROOT, timeout=60,
                              env={**os.environ, "MESHD_TOKEN": (self.state / "token").read_text().strip()})

    def apply(self, text: str) -> None:
        self.cli("apply", "-f", "-", text=text)

    def address(self, name: str) -> str:
        return self.until(lambda: json.loads(self.get(f"/api/v1/namespaces/default/services/{name}") or "{}")
                          .get("spec", {}).get("clusterIP"), f"service {name}")

    def serving(self, name: str, who: str) -> str:
        address = self.address(name)
        self.until(lambda: curl(address) == who, f"{who} through {address}")
        return address

    def until(self, check, what: str, timeout: float = 90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"the agent exited: {self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        raise AssertionError(f"{what}: not within {timeout}s; log: {self.log.read_text()[-3000:]}")

    def slot(self) -> int:
        """The host slot the agent's last start took (from its log)."""
        found = re.findall(r"host slot (\d+): Service addresses", self.log.read_text())
        assert found, self.log.read_text()[-3000:]
        return int(found[-1])

    def terminate(self) -> None:
        """`meshd agent`'s clean stop: its pods run on."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self, pod: str) -> None:
        """Its pod deleted, a clean stop; then its sidecar, if it was left running."""
        if self.process is not None and self.process.poll() is None:
            self.cli("delete", "pod", pod, "--ignore-not-found", check=False)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.status(f"/api/v1/namespaces/default/pods/{pod}") != "404":
                time.sleep(0.2)
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)
        pid = running_sidecar(self.state)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)


def hold_slots(run_dir: Path, slots: range) -> list:
    """Holds these slots as live agents would (the lock files stay open until closed)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    held = []
    for slot in slots:
        lock = open(run_dir / f"slot-{slot}.lock", "a+b", buffering=0)  # noqa: SIM115 - closed by the test
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.append(lock)
    return held


def test_a_killed_agents_sidecar_keeps_its_slot_until_an_agent_must_take_it(tmp_path: Path, agent_id: str) -> None:
    run = tmp_path / "run"
    name = f"slotorphan-{secrets.token_hex(3)}"
    port = free_port()
    a = AgentProcess(tmp_path, "a", agent_id, run).start()
    b = AgentProcess(tmp_path, "b", agent_id, run)
    c = AgentProcess(tmp_path, "c", agent_id, run)
    held: list = []
    try:
        a.apply(web(name, site(tmp_path, "a"), port))
        old = a.serving(name, "a")
        a.kill()  # the machine kills the agent: its sidecar serves on, for the next agent of its state dir
        sidecar = running_sidecar(a.state)
        assert sidecar is not None and curl(old) == "a"

        b.start()  # slot 0 is free, but A's sidecar still serves its addresses: B takes another
        assert "host slot 1:" in b.log.read_text()
        assert curl(old) == "a" and running_sidecar(a.state) == sidecar
        a.start()  # A comes back to its slot and adopts its sidecar: nothing moved
        assert f"adopted the running sidecar (pid {sidecar})" in a.log.read_text()
        assert a.serving(name, "a") == old

        a.kill()
        held = hold_slots(run, range(2, SLOTS))  # every slot but A's is held (B holds 1): C must take slot 0
        c.start()
        log = c.log.read_text()
        assert f"the sidecar (pid {sidecar}) of its last agent" in log and "host slot 0:" in log
        assert running_sidecar(a.state) is None
        c.apply(web(name, site(tmp_path, "c"), port))
        assert c.serving(name, "c") == old  # the addresses A's sidecar had are C's, and served
        for lock in held:
            lock.close()
        held = []
        a.start()  # A again: its slot is C's; its Service moves to the free slot
        assert "re-addressed to" in a.log.read_text()
        new = a.serving(name, "a")
        assert new != old and curl(old) == "c"
    finally:
        for lock in held:
            lock.close()
        for agent in (a, b, c):
            agent.stop(name)
