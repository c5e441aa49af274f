"""Storage end to end on the real Docker engine, driven by the real kubectl: a Deployment on a claim keeps its data
through rollouts, pod deletion, a container restart and an agent restart; reclaimPolicy Delete removes the Docker
volume and Retain keeps it (Released) with its data; a claim in use waits for its pod before it goes; hostPath
type checks; a pod waits for a claim that does not exist yet; ReadWriteOncePod; bad claims are refused with the
field path and change nothing."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.integration.agent_harness import agent_options, started_agent
from tests.integration.test_kubectl import Cluster, write_kubeconfig

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CLAIM = """\
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {name}}}
spec:
  accessModes: [{mode}]
  {klass}resources: {{requests: {{storage: {size}}}}}
"""

WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: meshd/busybox:latest
        imagePullPolicy: IfNotPresent
        env: [{name: VERSION, value: "1"}]
        command: ["/bin/sh", "-c", "echo $HOSTNAME-v$VERSION >> /data/log; exec sleep 3600"]
        volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
"""


def claim(name: str = "data", *, size: str = "64Mi", mode: str = "ReadWriteOnce", klass: str | None = None) -> str:
    return CLAIM.format(name=name, size=size, mode=mode,
                        klass="" if klass is None else f"storageClassName: {klass}\n  ")


def pod(name: str, volumes: str, command: str = "exec sleep 3600", mounts: str = "") -> str:
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: {name}}}
        spec:
          terminationGracePeriodSeconds: 1
          containers:
          - name: c
            image: meshd/busybox:latest
            imagePullPolicy: IfNotPresent
            command: ["/bin/sh", "-c", "{command}"]
            volumeMounts: {mounts}
          volumes: {volumes}
        """)


class Agent:
    """An agent on the Docker engine that a test can restart (its pods keep running meanwhile)."""

    def __init__(self, tmp_path: Path, agent_id: str) -> None:
        self.options = agent_options(tmp_path, agent_id, driver="docker")
        self.tmp_path = tmp_path
        self.agent: Any = None
        self.cluster: Cluster | None = None

    async def start(self) -> Cluster:
        self.agent = await started_agent(self.options)
        api = f"http://{self.options.api}"
        kubeconfig = await write_kubeconfig(api, self.options.state_dir, self.tmp_path / "kubeconfig")
        self.cluster = Cluster(api, kubeconfig, self.tmp_path)
        return self.cluster

    async def restart(self) -> None:
        await self.agent.close(stop_pods=False)
        self.agent = await started_agent(self.options)


@pytest.fixture
async def agent(tmp_path: Path, agent_id: str, busybox_image: str, pause_image: str):
    a = Agent(tmp_path, agent_id)
    await a.start()
    yield a
    await a.agent.close(stop_pods=True)


async def kubectl(cluster: Cluster, *args: str, ok: bool = True) -> str:
    code, out, err = await cluster.kubectl(*args)
    if ok:
        assert code == 0, (args, out, err)
        return out
    assert code != 0, (args, out)
    return err


async def apply(cluster: Cluster, text: str, name: str = "m.yaml") -> str:
    path = cluster.cache / name
    path.write_text(text)
    return await kubectl(cluster, "apply", "-f", str(path))


async def get(cluster: Cluster, *args: str) -> Any:
    return json.loads(await kubectl(cluster, "get", *args, "-o", "json"))


async def until(check, what: str, timeout: float = 120.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.3)
    raise AssertionError(f"never: {what} (last: {last!r})")


async def running_pod(cluster: Cluster, selector: str) -> str:
    """The one ready pod of the selector (others may still be terminating)."""
    async def ready() -> str | None:
        pods = (await get(cluster, "pods", "-l", selector))["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")
                and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]
        return live[0]["metadata"]["name"] if len(live) == 1 and len(pods) == 1 else None
    return await until(ready, f"one ready pod of {selector}")


async def log_of(cluster: Cluster, pod_name: str) -> list[str]:
    return (await kubectl(cluster, "exec", pod_name, "--", "cat", "/data/log")).split()


def docker_volume(client: Any, name: str) -> Any:
    import docker.errors

    try:
        return client.volumes.get(name)
    except docker.errors.NotFound:
        return None


def read_volume(client: Any, name: str, path: str) -> str:
    return client.containers.run("meshd/busybox:latest", ["cat", f"/v/{path}"], volumes={name: {"bind": "/v"}},
                                 remove=True).decode()


async def test_a_deployment_on_a_claim_keeps_its_data_through_rollouts_deletion_and_an_agent_restart(
        agent: Agent, docker_client: Any) -> None:
    cluster = agent.cluster
    assert cluster is not None
    out = await apply(cluster, claim() + "---\n" + WEB)
    assert sorted(out.split("\n")[:2]) == ["deployment.apps/web created", "persistentvolumeclaim/data created"]
    first = await running_pod(cluster, "app=web")
    table = await kubectl(cluster, "get", "pvc,pv,sc")
    pvc = await get(cluster, "pvc", "data")
    volume = pvc["spec"]["volumeName"]
    assert pvc["status"] == {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "64Mi"}}
    assert pvc["spec"]["storageClassName"] == "local"
    assert f"persistentvolumeclaim/data   Bound    {volume}   64Mi       RWO            local" in table, table
    assert "storageclass.storage.k8s.io/local (default)   meshd.io/local   Delete" in table, table
    pv = await get(cluster, "pv", volume)
    assert pv["status"]["phase"] == "Bound" and pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]
    handle = pv["spec"]["csi"]["volumeHandle"]
    labels = docker_volume(docker_client, handle).attrs["Labels"]
    assert labels["io.meshd.managed"] == "true" and labels["io.meshd.pv"] == volume
    assert labels["io.meshd.claim"] == "default/data"

    await kubectl(cluster, "rollout", "restart", "deployment/web")
    await kubectl(cluster, "rollout", "status", "deployment/web", "--timeout=120s")
    second = await running_pod(cluster, "app=web")
    await kubectl(cluster, "set", "env", "deployment/web", "VERSION=2")
    await kubectl(cluster, "rollout", "status", "deployment/web", "--timeout=120s")
    third = await running_pod(cluster, "app=web")
    await kubectl(cluster, "delete", "pod", third)
    fourth = await running_pod(cluster, "app=web")
    assert await log_of(cluster, fourth) == [f"{first}-v1", f"{second}-v1", f"{third}-v2", f"{fourth}-v2"]

    # the claim is in use: deleting it waits (Terminating) until its pod is gone, across an agent restart too
    await kubectl(cluster, "delete", "pvc", "data", "--wait=false")
    assert (await kubectl(cluster, "get", "pvc", "data", "--no-headers")).split()[1] == "Terminating"
    await agent.restart()  # the pod runs on; the new agent adopts it and its claim
    assert await running_pod(cluster, "app=web") == fourth
    pvc = await get(cluster, "pvc", "data")
    assert pvc["status"]["phase"] == "Bound" and pvc["metadata"]["deletionTimestamp"]
    assert (await kubectl(cluster, "get", "pvc", "data", "--no-headers")).split()[1] == "Terminating"
    app = docker_client.containers.list(filters={"label": [f"io.meshd.pod={fourth}", "io.meshd.container=c"]})[0]
    app.kill()  # the adopted pod's container restarts, on the same volume

    async def restarted() -> bool:
        status = (await get(cluster, "pod", fourth))["status"]["containerStatuses"][0]
        return status["restartCount"] == 1 and status["ready"]
    await until(restarted, "the container restarted")
    assert await log_of(cluster, fourth) == [f"{first}-v1", f"{second}-v1", f"{third}-v2", f"{fourth}-v2",
                                             f"{fourth}-v2"]
    assert docker_volume(docker_client, handle) is not None
    await kubectl(cluster, "delete", "deployment", "web")

    async def gone() -> bool:
        out = await kubectl(cluster, "get", "pvc,pv", "-o", "name")
        return out.strip() == "" and docker_volume(docker_client, handle) is None
    await until(gone, "the claim, its volume and the Docker volume removed")


async def test_retain_keeps_a_released_volume_and_its_data(agent: Agent, docker_client: Any) -> None:
    cluster = agent.cluster
    assert cluster is not None
    keep = textwrap.dedent("""\
        apiVersion: storage.k8s.io/v1
        kind: StorageClass
        metadata: {name: keep}
        provisioner: meshd.io/local
        reclaimPolicy: Retain
        """)
    writer = pod("writer", "[{name: d, persistentVolumeClaim: {claimName: kept}}]",
                 "echo precious > /data/file; exec sleep 3600", "[{name: d, mountPath: /data}]")
    await apply(cluster, keep + "---\n" + claim("kept", klass="keep") + "---\n" + writer)
    await kubectl(cluster, "wait", "--for=condition=Ready", "pod/writer", "--timeout=120s")
    volume = (await get(cluster, "pvc", "kept"))["spec"]["volumeName"]
    pv = await get(cluster, "pv", volume)
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    handle = pv["spec"]["csi"]["volumeHandle"]
    await kubectl(cluster, "delete", "pod", "writer")
    await kubectl(cluster, "delete", "pvc", "kept")

    async def released() -> bool:
        return (await get(cluster, "pv", volume))["status"]["phase"] == "Released"
    await until(released, "the volume Released")
    row = (await kubectl(cluster, "get", "pv", volume, "--no-headers")).split()
    assert row[3:7] == ["Retain", "Released", "default/kept", "keep"], row
    assert read_volume(docker_client, handle, "file") == "precious\n"
    # a new claim of the same name is not given the released volume (it is another claim)
    await apply(cluster, claim("kept", klass="keep"))
    async def bound() -> str | None:
        pvc = await get(cluster, "pvc", "kept")
        return pvc["status"]["phase"] == "Bound" and pvc["spec"]["volumeName"]
    assert await until(bound, "the new claim bound") != volume
    assert (await get(cluster, "pv", volume))["status"]["phase"] == "Released"
    await kubectl(cluster, "delete", "pvc", "kept")
    await kubectl(cluster, "delete", "pv", volume)
    docker_client.volumes.get(handle).remove()


async def test_host_paths_missing_claims_and_read_write_once_pod(agent: Agent, tmp_path: Path) -> None:
    cluster = agent.cluster
    assert cluster is not None
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    wrong = pod("wrong", f"[{{name: h, hostPath: {{path: {a_file}, type: Directory}}}}]",
                mounts="[{name: h, mountPath: /h}]")
    made = tmp_path / "made" / "here"
    maker = pod("maker", f"[{{name: h, hostPath: {{path: {made}, type: DirectoryOrCreate}}}}]",
                "echo from-pod > /h/out; exec sleep 3600", "[{name: h, mountPath: /h}]")
    waiter = pod("waiter", "[{name: d, persistentVolumeClaim: {claimName: later}}]",
                 mounts="[{name: d, mountPath: /data}]")
    await apply(cluster, wrong + "---\n" + maker + "---\n" + waiter)
    await kubectl(cluster, "wait", "--for=condition=Ready", "pod/maker", "--timeout=120s")
    assert (made / "out").read_text() == "from-pod\n"

    async def pending(name: str, words: str) -> bool:
        p = await get(cluster, "pod", name)
        scheduled = next(c for c in p["status"]["conditions"] if c["type"] == "PodScheduled")
        return p["status"]["phase"] == "Pending" and words in scheduled.get("message", "")
    await until(lambda: pending("wrong", f"hostPath type check failed: {a_file} is not a directory"),
                "the hostPath refused")
    await until(lambda: pending("waiter", 'persistentvolumeclaim "later" not found'), "the pod waiting")
    events = await kubectl(cluster, "get", "events", "--field-selector", "involvedObject.name=waiter")
    assert 'FailedScheduling' in events and '0/1 nodes are available: persistentvolumeclaim "later" not found.' \
        in events, events

    await apply(cluster, claim("later", mode="ReadWriteOncePod"))
    await kubectl(cluster, "wait", "--for=condition=Ready", "pod/waiter", "--timeout=120s")
    second = pod("second", "[{name: d, persistentVolumeClaim: {claimName: later}}]",
                 mounts="[{name: d, mountPath: /data}]")
    await apply(cluster, second)
    await until(lambda: pending("second", "ReadWriteOncePod"), "the second user of a ReadWriteOncePod claim waits")
    await kubectl(cluster, "delete", "pod", "waiter")
    await kubectl(cluster, "wait", "--for=condition=Ready", "pod/second", "--timeout=120s")
    await kubectl(cluster, "delete", "pod", "second", "wrong", "maker")


async def test_a_read_only_many_claim_binds_a_static_volume_and_mounts_read_only(agent: Agent, tmp_path: Path) -> None:
    cluster = agent.cluster
    assert cluster is not None
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello").write_text("static data\n")
    static = textwrap.dedent(f"""\
        apiVersion: v1
        kind: PersistentVolume
        metadata: {{name: shared}}
        spec:
          capacity: {{storage: 1Gi}}
          accessModes: [ReadOnlyMany]
          hostPath: {{path: {shared}, type: Directory}}
        """)
    reader = pod("reader", "[{name: d, persistentVolumeClaim: {claimName: shared}}]",
                 "cat /data/hello; touch /data/new 2>/dev/null && echo writable || echo read-only; exec sleep 3600",
                 "[{name: d, mountPath: /data}]")
    await apply(cluster, static + "---\n" + claim("shared", mode="ReadOnlyMany", klass='""') + "---\n" + reader)
    await kubectl(cluster, "wait", "--for=condition=Ready", "pod/reader", "--timeout=120s")
    row = (await kubectl(cluster, "get", "pv", "shared", "--no-headers")).split()
    assert row[:6] == ["shared", "1Gi", "ROX", "Retain", "Bound", "default/shared"], row

    async def logged() -> str:
        return (await kubectl(cluster, "logs", "reader")).strip()
    assert await until(lambda: _two_lines(logged), "the reader's output") == "static data\nread-only"
    assert not (shared / "new").exists()
    await kubectl(cluster, "delete", "pod", "reader")
    await kubectl(cluster, "delete", "pvc", "shared")
    await until(lambda: _phase(cluster, "shared", "Released"), "the static volume released")
    assert (shared / "hello").exists()  # Retain (a static volume's default) keeps the data


async def _two_lines(read) -> str | None:
    text = await read()
    return text if len(text.splitlines()) == 2 else None


async def _phase(cluster: Cluster, volume: str, phase: str) -> bool:
    return (await get(cluster, "pv", volume))["status"]["phase"] == phase


async def test_bad_claims_are_refused_with_the_field_path_and_change_nothing(agent: Agent) -> None:
    cluster = agent.cluster
    assert cluster is not None
    no_size = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: bad}\nspec:\n" \
              "  accessModes: [ReadWriteOnce]\n  resources: {requests: {}}\n"
    path = cluster.cache / "bad.yaml"
    for text, words in ((no_size, "spec.resources.requests.storage: required field is missing"),
                        (claim("bad", size="-1Gi"), "spec.resources.requests.storage: must be greater than zero"),
                        (claim("bad", mode="ReadWriteSometimes"), "spec.accessModes[0]: unsupported value")):
        path.write_text(text)
        err = await kubectl(cluster, "apply", "-f", str(path), ok=False)
        assert words in err, err
    assert (await kubectl(cluster, "get", "pvc", "-o", "name")).strip() == ""
    await apply(cluster, claim("fast", klass="fast"))

    async def reason() -> bool:
        events = await kubectl(cluster, "get", "events", "--field-selector", "involvedObject.name=fast")
        return 'ProvisioningFailed' in events and 'storageclass.storage.k8s.io "fast" not found' in events
    await until(reason, "the unknown class reported")
    assert (await get(cluster, "pvc", "fast"))["status"]["phase"] == "Pending"
    assert (await kubectl(cluster, "get", "pv", "-o", "name")).strip() == ""
