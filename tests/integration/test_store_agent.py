"""The object store under a real agent process (process driver): 2,000 Services applied and deleted in one
request each with DNS answering throughout, a full disk refusing a write with nothing diverging across a
restart, a damaged store or record, and a restart (or a migration from state.json) keeping every object and
its uid."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.integration.agent_harness import eventually, free_port, state_headers

pytestmark = pytest.mark.slow


class AgentProcess:
    """`meshd agent` as its own process on free ports, so its event loop is not the test's."""

    def __init__(self, state_dir: Path, log: Path) -> None:
        self.state_dir, self.log = state_dir, log
        self.api = f"http://127.0.0.1:{free_port()}"
        self.dns_port = free_port(udp=True)
        self.proc: asyncio.subprocess.Process | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "meshd.cli", "agent", "--driver", "process", "--mdns", "off", "--no-sidecar",
                "--api", self.api.removeprefix("http://"), "--dns", f"127.0.0.1:{self.dns_port}",
                "--state-dir", str(self.state_dir), "--agent-id", f"store-{os.getpid()}-{self.dns_port}"]

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(*self.command(), stdout=log, stderr=log)
        async with aiohttp.ClientSession() as http:
            async def healthy() -> bool:
                assert self.proc is not None and self.proc.returncode is None, self.log.read_text()[-2000:]
                try:
                    async with http.get(self.api + "/healthz") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False
            for _ in range(600):
                if await healthy():
                    return
                await asyncio.sleep(0.05)
        raise AssertionError("the agent did not start: " + self.log.read_text()[-2000:])

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()

    async def request(self, method: str, path: str, body: str | None = None) -> tuple[int, Any]:
        headers = state_headers(self.state_dir)
        async with aiohttp.ClientSession() as http, http.request(method, self.api + path, data=body,
                                                                  headers=headers) as response:
            return response.status, await response.json(content_type=None)

    async def items(self, resource: str) -> dict[str, Any]:
        group = "/api/v1" if resource in ("pods", "services") else "/apis/apps/v1"
        status, body = await self.request("GET", f"{group}/namespaces/default/{resource}")
        assert status == 200, body
        return {o["metadata"]["name"]: o for o in body["items"]}


@pytest.fixture
async def agent(tmp_path: Path) -> Any:
    started = AgentProcess(tmp_path / "state", tmp_path / "agent.log")
    yield started
    if started.proc is not None and started.proc.returncode is None:  # stop whatever pods it runs
        for resource in ("deployments", "pods", "services"):
            for name in await started.items(resource):
                await started.request("DELETE", f"/{'api/v1' if resource != 'deployments' else 'apis/apps/v1'}"
                                                f"/namespaces/default/{resource}/{name}")
        await eventually(lambda: not started.proc or _no_pods(started), timeout=30)
    await started.stop()


def _no_pods(agent: AgentProcess) -> bool:
    out = subprocess.run(["curl", "-sf", "-H",
                          "Authorization: " + state_headers(agent.state_dir)["Authorization"],
                          agent.api + "/api/v1/pods"], check=False, capture_output=True, text=True)
    return out.returncode == 0 and not json.loads(out.stdout)["items"]


class DnsLoop(threading.Thread):
    """Asks the agent's DNS for one name over and over (a real resolver's UDP queries, in a thread)."""

    def __init__(self, port: int, name: str) -> None:
        super().__init__(daemon=True)
        self.port, self.name = port, name
        self.results: list[tuple[float, bool]] = []  # (when sent, answered with an address)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            sent = time.monotonic()
            try:
                reply = dns.query.udp(dns.message.make_query(self.name, "A"), "127.0.0.1", port=self.port, timeout=5)
                ok = reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)
            except dns.exception.Timeout:
                ok = False
            self.results.append((sent, ok))
            time.sleep(0.01)

    def during(self, start: float, end: float) -> tuple[int, int]:
        window = [ok for sent, ok in self.results if start <= sent <= end]
        return sum(window), len(window) - sum(window)


def services(count: int, *, prefix: str = "svc", annotation: str = "") -> str:
    extra = f"\n  annotations: {{note: {annotation}}}" if annotation else ""
    return "---\n".join(
        f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {prefix}-{i}{extra}\nspec:\n  selector: {{app: a{i}}}\n"
        f"  ports:\n  - {{name: http, port: 80, targetPort: 8080}}\n" for i in range(count))


SLEEPER = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: NAME}
spec:
  replicas: 2
  selector: {matchLabels: {app: NAME}}
  template:
    metadata: {labels: {app: NAME}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: busybox, command: [sleep, "3600"]}
"""


async def test_2000_services_applied_and_deleted_in_one_request_each_with_dns_answering(agent: AgentProcess) -> None:
    await agent.start()
    assert (await agent.request("POST", "/v1/apply", services(1, prefix="steady")))[0] == 200
    resolver = DnsLoop(agent.dns_port, "steady-0.default.svc.cluster.local")
    resolver.start()
    try:
        await eventually(lambda: resolver.during(0, time.monotonic())[0] > 0)
        text = services(2000)
        for path, action, left in (("/v1/apply", "created", 2001), ("/v1/delete", "deleted", 1)):
            start = time.monotonic()
            status, body = await agent.request("POST", path, text)
            end = time.monotonic()
            assert status == 200, body
            assert {r["action"] for r in body["results"]} == {action} and len(body["results"]) == 2000
            answered, unanswered = resolver.during(start, end)
            assert answered > 0 and unanswered == 0, (path, answered, unanswered)
            assert len(await agent.items("services")) == left
    finally:
        resolver.done.set()
        resolver.join()


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)],
                                           check=False, capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    handle = filler.open("wb", buffering=0)
    try:
        while True:
            handle.write(b"x" * 4096)
    except OSError:
        pass
    finally:
        handle.close()
    return filler


async def test_a_full_disk_refuses_the_apply_and_nothing_diverges_across_a_restart(small_disk: Path,
                                                                                    tmp_path: Path) -> None:
    agent = AgentProcess(small_disk / "state", tmp_path / "agent.log")
    await agent.start()
    try:
        status, _ = await agent.request("POST", "/v1/apply", services(1, prefix="kept"))
        assert status == 200
        kept = (await agent.items("services"))["kept-0"]
        filler = await asyncio.to_thread(fill, small_disk)

        big = SLEEPER.replace("NAME", "new") + "---\n" + services(300, prefix="new", annotation="x" * 1000)
        status, body = await agent.request("POST", "/v1/apply", big)
        assert status == 507, body
        assert "disk is full" in body["message"] and "store.db" in body["message"]
        assert list(await agent.items("services")) == ["kept-0"]
        assert await agent.items("deployments") == {} and await agent.items("pods") == {}

        await agent.stop()
        filler.unlink()
        await agent.start()
        assert list(await agent.items("services")) == ["kept-0"]
        assert (await agent.items("services"))["kept-0"]["metadata"]["uid"] == kept["metadata"]["uid"]
        assert await agent.items("deployments") == {}

        status, body = await agent.request("POST", "/v1/apply", services(300, prefix="new", annotation="x" * 100))
        assert status == 200, body  # room again: the same agent takes writes
        assert len(await agent.items("services")) == 301
    finally:
        await agent.stop()


@pytest.mark.parametrize("broken", ["store.db", "state.json"])
async def test_a_damaged_store_is_named_in_one_line(tmp_path: Path, broken: str) -> None:
    agent = AgentProcess(tmp_path / "state", tmp_path / "agent.log")
    agent.state_dir.mkdir()
    (agent.state_dir / broken).write_bytes(b"\x00garbage, not what meshd wrote " * 100)
    done = await asyncio.to_thread(subprocess.run, agent.command(), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, done.stderr
    assert str(agent.state_dir / broken) in errors[0] and "move it aside" in errors[0]


async def test_a_restart_keeps_every_acknowledged_object_and_its_uid(agent: AgentProcess) -> None:
    await agent.start()
    manifest = SLEEPER.replace("NAME", "web") + "---\n" + services(2)
    assert (await agent.request("POST", "/v1/apply", manifest))[0] == 200
    status, body = await agent.request("PATCH", "/apis/apps/v1/namespaces/default/deployments/web/scale",
                                       json.dumps({"spec": {"replicas": 3}}))
    assert status == 200, body
    await eventually(lambda: _count_pods(agent) == 3)
    before = {r: await agent.items(r) for r in ("deployments", "services", "replicasets")}
    pods_before = set(await agent.items("pods"))
    await owners_are_real_uids(agent)
    assert before["deployments"]["web"]["metadata"]["generation"] == 2  # the scale changed the spec

    await agent.stop()
    await agent.start()
    after = {r: await agent.items(r) for r in ("deployments", "services", "replicasets")}
    for resource, objects in before.items():
        assert set(after[resource]) == set(objects)
        for name, obj in objects.items():
            for field in ("uid", "creationTimestamp", "generation"):
                assert after[resource][name]["metadata"].get(field) == obj["metadata"].get(field), (name, field)
    assert after["deployments"]["web"]["spec"]["replicas"] == 3
    assert set(await agent.items("pods")) == pods_before  # adopted, not replaced

    # one damaged record: reported, left out, and the pods it owned do not run on as orphans
    await agent.stop()
    with sqlite3.connect(agent.state_dir / "store.db") as db:
        db.execute("UPDATE objects SET data = '{broken' WHERE kind = 'Deployment' AND name = 'web'")
    await agent.start()
    assert await agent.items("deployments") == {}
    assert set(await agent.items("services")) == {"svc-0", "svc-1"}
    await eventually(lambda: _count_pods(agent) == 0)
    assert "damaged record Deployment default/web" in agent.log.read_text()
    status, body = await agent.request("POST", "/v1/apply", manifest)  # applying it again replaces the record
    assert status == 200 and body["results"][0]["action"] == "created", body
    await eventually(lambda: _count_pods(agent) == 2)


async def test_a_restart_keeps_a_pending_pod_under_its_name_and_uid(agent: AgentProcess) -> None:
    """A pod whose object is stored but that has no container (Pending: it does not fit the node) is the same pod
    after a restart: started again under its name and uid, not replaced by a new one."""
    await agent.start()
    manifest = SLEEPER.replace("NAME", "big").replace(
        'command: [sleep, "3600"]}', 'command: [sleep, "3600"], resources: {requests: {cpu: "100000"}}}')
    assert (await agent.request("POST", "/v1/apply", manifest))[0] == 200
    await eventually(lambda: _count_pods(agent) == 2)
    await eventually(lambda: len(_stored_pods(agent)) == 2)
    before = {name: obj["metadata"]["uid"] for name, obj in (await agent.items("pods")).items()}
    assert all(p["status"]["phase"] == "Pending" for p in (await agent.items("pods")).values())

    await agent.stop()
    assert set(_stored_pods(agent)) == set(before)
    await agent.start()
    await eventually(lambda: _unschedulable(agent) == 2)  # the controllers' pass after the restart ran
    after = await agent.items("pods")
    assert {name: obj["metadata"]["uid"] for name, obj in after.items()} == before
    assert all(p["status"]["phase"] == "Pending" for p in after.values())


def _unschedulable(agent: AgentProcess) -> int:
    out = subprocess.run(["curl", "-sf", "-H", "Authorization: " + state_headers(agent.state_dir)["Authorization"],
                          agent.api + "/api/v1/pods"], check=False, capture_output=True, text=True)
    return sum(1 for p in json.loads(out.stdout or '{"items": []}')["items"]
               if any(c.get("reason") == "Unschedulable" for c in p["status"].get("conditions", [])))


def _stored_pods(agent: AgentProcess) -> list[str]:
    with sqlite3.connect(agent.state_dir / "store.db") as db:
        return [name for (name,) in db.execute("SELECT name FROM objects WHERE kind = 'Pod'")]


async def owners_are_real_uids(agent: AgentProcess) -> None:
    """The official Python client reads pods and ReplicaSets (their ownerReferences have uids), and each
    ownerReference names the uid of the object that owns it."""
    from kubernetes.client import ApiClient

    lists = {}
    for path, kind in (("/api/v1/namespaces/default/pods", "V1PodList"),
                       ("/apis/apps/v1/namespaces/default/replicasets", "V1ReplicaSetList"),
                       ("/apis/apps/v1/namespaces/default/deployments", "V1DeploymentList")):
        status, body = await agent.request("GET", path)
        assert status == 200, body
        lists[kind] = ApiClient().deserialize(json.dumps(body), kind, "application/json").items
    uids = {(o.kind or kind, o.metadata.name): o.metadata.uid for kind, items in
            (("Pod", lists["V1PodList"]), ("ReplicaSet", lists["V1ReplicaSetList"]),
             ("Deployment", lists["V1DeploymentList"])) for o in items}
    assert lists["V1PodList"] and lists["V1ReplicaSetList"]
    for obj in [*lists["V1PodList"], *lists["V1ReplicaSetList"]]:
        (ref,) = obj.metadata.owner_references
        assert ref.uid == uids[(ref.kind, ref.name)], (obj.metadata.name, ref)
    assert len(set(uids.values())) == len(uids)


def _count_pods(agent: AgentProcess) -> int:
    out = subprocess.run(["curl", "-sf", "-H",
                          "Authorization: " + state_headers(agent.state_dir)["Authorization"],
                          agent.api + "/api/v1/pods"], check=False, capture_output=True, text=True)
    return len([p for p in json.loads(out.stdout)["items"] if "deletionTimestamp" not in p["metadata"]])


async def test_an_old_state_json_moves_into_the_store_keeping_uids(agent: AgentProcess) -> None:
    agent.state_dir.mkdir(parents=True)
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "old"},
               "spec": {"selector": {"app": "old"}, "ports": [{"port": 80}]}}
    uid = "0b6c7e4a-58a3-4f0e-9d1e-2c1f4b9f0a11"
    (agent.state_dir / "state.json").write_text(json.dumps({
        "objects": [{"manifest": service, "generation": 3, "created": 1700000000.5, "uid": uid}],
        "replicasets": []}))
    await agent.start()
    for _ in range(2):  # and again after a restart, from the store alone
        meta = (await agent.items("services"))["old"]["metadata"]
        assert (meta["uid"], meta["generation"], meta["creationTimestamp"]) == (uid, 3, "2023-11-14T22:13:20Z")
        assert not (agent.state_dir / "state.json").exists()
        assert (agent.state_dir / "state.json.migrated").exists()
        await agent.stop()
        await agent.start()


async def test_a_damaged_process_record_leaves_no_orphan(agent: AgentProcess) -> None:
    await agent.start()
    manifest = SLEEPER.replace("NAME", "rec").replace("replicas: 2", "replicas: 1")
    assert (await agent.request("POST", "/v1/apply", manifest))[0] == 200
    await eventually(lambda: _count_pods(agent) == 1 and _running_records(agent))
    await agent.stop()
    (path, record), = _running_records(agent)
    path.write_text("{damaged")
    await agent.start()
    await eventually(lambda: not Path(f"/proc/{record['pid']}").exists() or _zombie(record["pid"]))
    await eventually(lambda: _count_pods(agent) == 1 and _running_records(agent))
    assert f"the record {path} is damaged" in agent.log.read_text()


def _running_records(agent: AgentProcess) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in (agent.state_dir / "process" / "process-driver" / "records").glob("*.json"):
        record = json.loads(path.read_text())
        if record["kind"] == "container" and record["state"] == "running":
            found.append((path, record))
    return found


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


SLOW = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: slow}
spec:
  replicas: 1
  progressDeadlineSeconds: 1
  selector: {matchLabels: {app: slow}}
  template:
    metadata: {labels: {app: slow}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        command: [sleep, "3600"]
        readinessProbe: {httpGet: {path: /, port: 9}, periodSeconds: 0.2}
"""


def _stored(agent: AgentProcess, kind: str) -> list[dict[str, Any]]:
    """The objects of a kind as the agent's SQLite store holds them (read beside the running agent)."""
    with sqlite3.connect(f"file:{agent.state_dir / 'store.db'}?mode=ro", uri=True) as db:
        return [json.loads(row[0]) for row in db.execute("SELECT data FROM objects WHERE kind = ?", (kind,))]


def _progressing(deployment: dict[str, Any]) -> str:
    return next((c["reason"] for c in deployment["status"].get("conditions", []) if c["type"] == "Progressing"), "")


async def test_pods_events_and_a_rollouts_progress_are_store_objects_across_a_restart(agent: AgentProcess) -> None:
    await agent.start()
    assert (await agent.request("POST", "/v1/apply", SLEEPER.replace("NAME", "web") + "---\n" + SLOW))[0] == 200
    await eventually(lambda: _count_pods(agent) == 3)

    for _ in range(600):  # the rollout of `slow` times out (its pod never gets ready)
        if _progressing((await agent.items("deployments"))["slow"]) == "ProgressDeadlineExceeded":
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the rollout of slow did not time out")
    pods = await agent.items("pods")

    def stored_pods_running() -> bool:
        stored = {p["metadata"]["name"]: p for p in _stored(agent, "Pod")}
        return set(stored) == set(pods) and all(
            p["status"].get("phase") == "Running" and p["spec"].get("nodeName") for p in stored.values())

    await eventually(stored_pods_running, timeout=30)
    for pod in pods.values():
        assert pod["metadata"]["resourceVersion"]  # listed from its object
    await eventually(lambda: {("web", "Applied"), ("slow", "ProgressDeadlineExceeded"),
                              ("web", "NewReplicaSetAvailable")} <= {
        (e["involvedObject"]["name"], e["reason"]) for e in _stored(agent, "Event")})

    def completions() -> int:  # of web's rollout: announced once, not again when its pods are adopted anew
        return sum(int(e.get("count") or 1) for e in _stored(agent, "Event")
                   if (e["involvedObject"]["name"], e["reason"]) == ("web", "NewReplicaSetAvailable"))

    assert completions() == 1
    await agent.stop()
    await agent.start()
    # the deadline was exceeded before the restart: the first answer after it says so (not "progressing" anew)
    assert _progressing((await agent.items("deployments"))["slow"]) == "ProgressDeadlineExceeded"
    assert set(await agent.items("pods")) == set(pods)  # adopted, their objects kept
    status, listed = await agent.request("GET", "/api/v1/namespaces/default/events")
    assert status == 200 and ("web", "Applied") in {(e["involvedObject"]["name"], e["reason"])
                                                    for e in listed["items"]}
    for _ in range(300):  # web's pods adopted and available again
        if (await agent.items("deployments"))["web"]["status"].get("availableReplicas") == 2:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1)  # (a second announcement would follow at once)
    assert completions() == 1
    status, _ = await agent.request("DELETE", "/apis/apps/v1/namespaces/default/deployments/web")
    assert status == 200
    await eventually(lambda: {p["metadata"]["name"] for p in _stored(agent, "Pod")} ==
                     {n for n in pods if n.startswith("slow-")}, timeout=30)  # a pod's object goes with it
