"""Deletion as the API server does it, with the real kubectl and the Python client against a real agent (process
driver): a Foreground delete leaves the Deployment Terminating (deletionTimestamp, the foregroundDeletion
finalizer: `kubectl get` shows it, a watch sees it MODIFIED) while its pods go, then removes it (DELETED); a
user's finalizer holds an object Terminating until a PATCH takes it off; a Terminating object takes metadata
writes and refuses the rest. The pods here ignore SIGTERM until the test creates a file, so the Terminating state
lasts exactly as long as the test wants (no timing)."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import sys
import threading
from pathlib import Path

import pytest

from meshd.controller.terminating import PASS_INTERVAL
from tests.integration import test_kubectl
from tests.integration.test_kubectl_externalname import answer
from tests.integration.test_kubectl_writes import get_json, until, write

cluster = test_kubectl.cluster

pytestmark = [pytest.mark.slow]

STUBBORN = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: NAME
  FINALIZERS
spec:
  replicas: 2
  selector:
    matchLabels: {app: NAME}
  template:
    metadata:
      labels: {app: NAME}
    spec:
      terminationGracePeriodSeconds: 600
      containers:
      - name: main
        image: python
        command: ["PYTHON", "-c", "import os, signal, time\\nsignal.signal(signal.SIGTERM, lambda *_: None)\\n\
while not os.path.exists('RELEASE'): time.sleep(0.1)"]
""".replace("PYTHON", sys.executable)


def stubborn(cluster, name: str, finalizers: str = "") -> tuple[str, str]:
    """The manifest of a Deployment whose pods stop only once the returned file exists."""
    release = str(cluster.cache / f"{name}.release")
    text = STUBBORN.replace("NAME", name).replace("RELEASE", release)
    return text.replace("FINALIZERS", f"finalizers: [{finalizers}]" if finalizers else ""), release


@pytest.fixture(autouse=True)
def released(cluster):
    """Every stubborn pod stops before the agent does, whatever the test did (they would hold its stop)."""
    yield
    for path in cluster.cache.glob("*.release"):
        path.touch()
    for name in ("fg", "held", "bg", "orph"):
        (cluster.cache / f"{name}.release").touch()


async def pods(cluster, app: str) -> list[dict]:
    return (await get_json(cluster, "pods", "-l", f"app={app}"))["items"]


async def started(cluster, name: str, finalizers: str = "") -> str:
    text, release = stubborn(cluster, name, finalizers)
    code, out, err = await cluster.kubectl("apply", "-f", await write(cluster, f"{name}.yaml", text))
    assert code == 0, err

    async def two_running() -> bool:
        return sum(1 for p in await pods(cluster, name) if p["status"].get("phase") == "Running") == 2

    await until(two_running, f"two pods of {name} running")
    return release


async def gone(cluster, *what: str) -> bool:
    code, out, err = await cluster.kubectl("get", *what, "-o", "name")
    return code == 1 and "NotFound" in err


async def test_foreground_delete_keeps_the_deployment_terminating_until_its_pods_are_gone(cluster):
    release = await started(cluster, "fg")
    watch = await asyncio.create_subprocess_exec(
        "kubectl", "get", "deployment", "fg", "-w", "--output-watch-events", "--no-headers", "-o",
        "custom-columns=EVENT:.type,NAME:.object.metadata.name,DELETING:.object.metadata.deletionTimestamp,"
        "FINALIZERS:.object.metadata.finalizers",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=cluster.env())
    assert watch.stdout is not None
    try:
        first = (await asyncio.wait_for(watch.stdout.readline(), 30)).decode().split()
        assert first[:3] == ["ADDED", "fg", "<none>"], first

        code, out, err = await cluster.kubectl("delete", "deployment", "fg", "--cascade=foreground", "--wait=false")
        assert (code, out.strip()) == (0, 'deployment.apps "fg" deleted from default namespace'), err

        shown = await get_json(cluster, "deployment", "fg")  # still there, Terminating
        assert shown["metadata"]["finalizers"] == ["foregroundDeletion"], shown["metadata"]
        assert shown["metadata"]["deletionTimestamp"]

        async def all_terminating() -> bool:
            found = await pods(cluster, "fg")
            return len(found) == 2 and all(p["metadata"].get("deletionTimestamp") for p in found)

        await until(all_terminating, "both pods of fg Terminating")
        (rs,) = (await get_json(cluster, "rs", "-l", "app=fg"))["items"]  # deleted in the foreground too
        assert rs["metadata"]["finalizers"] == ["foregroundDeletion"], rs["metadata"]
        assert rs["metadata"]["deletionTimestamp"] == shown["metadata"]["deletionTimestamp"]
        code, out, err = await cluster.kubectl("get", "deployment", "fg")
        assert code == 0 and out.split("\n")[1].split()[0] == "fg", (out, err)
        # Terminating: a spec change and a new finalizer are refused, a label is taken
        code, out, err = await cluster.kubectl("scale", "deployment", "fg", "--replicas=3")
        assert code == 1 and "being deleted" in err, (out, err)
        code, out, err = await cluster.kubectl("patch", "deployment", "fg", "-p", '{"spec": {"replicas": 5}}')
        assert code == 1 and "is invalid: spec: Forbidden" in err and "being deleted" in err, (out, err)
        code, out, err = await cluster.kubectl("patch", "deployment", "fg", "--type=json", "-p",
                                               '[{"op": "add", "path": "/metadata/finalizers/-", '
                                               '"value": "example.com/late"}]')
        assert code == 1 and "no new finalizers can be added if the object is being deleted" in err, (out, err)
        code, out, err = await cluster.kubectl("label", "deployment", "fg", "tier=old")
        assert code == 0, err
        shown = await get_json(cluster, "deployment", "fg")
        assert shown["metadata"]["labels"]["tier"] == "old" and shown["spec"]["replicas"] == 2

        with open(release, "w"):  # the pods stop now
            pass
        code, out, err = await cluster.kubectl("wait", "--for=delete", "deployment/fg", "--timeout=120s")
        assert code == 0, (out, err)
        assert await pods(cluster, "fg") == []
        assert (await get_json(cluster, "rs", "-l", "app=fg"))["items"] == []

        events = [first]
        while not events or events[-1][0] != "DELETED":
            line = (await asyncio.wait_for(watch.stdout.readline(), 30)).decode().split()
            assert line, "kubectl's watch ended"
            events.append(line)
        marked = next(i for i, e in enumerate(events) if e[2] != "<none>")
        assert events[marked][0] == "MODIFIED" and events[marked][3] == "[foregroundDeletion]", events
        assert all(e[2] != "<none>" for e in events[marked:]), events  # Terminating until it went
    finally:
        watch.kill()
        await watch.wait()


async def test_a_user_finalizer_holds_a_deployment_until_a_patch_takes_it_off(cluster):
    release = await started(cluster, "held", finalizers="example.com/hold")
    with open(release, "w"):  # its pods stop as soon as they are asked to
        pass
    code, out, err = await cluster.kubectl("delete", "deployment", "held", "--wait=false")  # Background
    assert code == 0, err

    async def pods_gone() -> bool:
        return await pods(cluster, "held") == []

    await until(pods_gone, "the held Deployment's pods gone")  # its dependents go; it stays
    shown = await get_json(cluster, "deployment", "held")
    assert shown["metadata"]["finalizers"] == ["example.com/hold"] and shown["metadata"]["deletionTimestamp"]
    code, out, err = await cluster.kubectl("patch", "deployment", "held", "--type=json", "-p",
                                           '[{"op": "remove", "path": "/metadata/finalizers"}]')
    assert code == 0, (out, err)
    assert await gone(cluster, "deployment", "held")


async def test_a_user_finalizer_holds_a_configmap_and_the_python_client_sees_it_terminating(cluster):
    kubernetes = pytest.importorskip("kubernetes")
    code, out, err = await cluster.kubectl("apply", "-f", await write(cluster, "cm.yaml", """\
apiVersion: v1
kind: ConfigMap
metadata: {name: kept, finalizers: [example.com/hold]}
data: {a: "1"}
"""))
    assert code == 0, err

    def use_the_client() -> dict:
        client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        core = kubernetes.client.CoreV1Api(client)
        seen: dict = {"events": []}
        events: queue.Queue = queue.Queue()
        watch = kubernetes.watch.Watch()

        version = core.list_namespaced_config_map("default").metadata.resource_version  # before the label

        def watching() -> None:
            for event in watch.stream(core.list_namespaced_config_map, "default",
                                      field_selector="metadata.name=kept", resource_version=version,
                                      timeout_seconds=120):
                meta = event["object"].metadata
                events.put((event["type"], meta.deletion_timestamp is not None, meta.finalizers, meta.labels))
                if event["type"] == "DELETED":
                    break
            events.put(None)

        watcher = threading.Thread(target=watching, daemon=True)
        watcher.start()
        core.patch_namespaced_config_map("kept", "default", {"metadata": {"labels": {"step": "watched"}}})
        while (event := events.get(timeout=60)) is not None and (event[3] or {}).get("step") != "watched":
            pass  # the watch runs: what follows is seen as it happens
        core.delete_namespaced_config_map("kept", "default")
        read = core.read_namespaced_config_map("kept", "default")
        seen["read"] = (read.metadata.finalizers, read.metadata.deletion_timestamp is not None)
        try:
            core.patch_namespaced_config_map("kept", "default", {"data": {"a": "2"}})
        except kubernetes.client.ApiException as error:
            seen["data"] = (error.status, json.loads(error.body)["reason"])
        while (event := events.get(timeout=60)) is not None and not event[1]:
            pass
        seen["events"].append(event[:3])  # the watch saw it Terminating: MODIFIED, with its deletionTimestamp
        core.patch_namespaced_config_map("kept", "default", {"metadata": {"finalizers": None}})
        try:
            core.read_namespaced_config_map("kept", "default")
        except kubernetes.client.ApiException as error:
            seen["gone"] = error.status
        while (event := events.get(timeout=60)) is not None:
            seen["events"].append(event[:3])
        watcher.join(60)
        return seen

    seen = await asyncio.to_thread(use_the_client)
    assert seen["read"] == (["example.com/hold"], True)
    assert seen["data"] == (422, "Invalid") and seen["gone"] == 404
    assert seen["events"][0] == ("MODIFIED", True, ["example.com/hold"]), seen["events"]
    assert seen["events"][-1][:2] == ("DELETED", True), seen["events"]  # its last state: Terminating


async def test_orphan_and_background_deletes_still_go_at_once(cluster):
    for name, cascade in (("bg", "background"), ("orph", "orphan")):
        release = await started(cluster, name)
        with open(release, "w"):
            pass
        code, out, err = await cluster.kubectl("delete", "deployment", name, f"--cascade={cascade}", "--wait=false")
        assert code == 0, err
        assert await gone(cluster, "deployment", name)  # no finalizer: gone when the delete answers
    assert len(await pods(cluster, "orph")) == 2  # kept, bare of their ReplicaSet's owner
    (rs,) = (await get_json(cluster, "rs", "-l", "app=orph"))["items"]
    assert "ownerReferences" not in rs["metadata"]


async def test_a_namespace_waits_for_an_object_a_finalizer_holds(cluster):
    code, out, err = await cluster.kubectl("create", "namespace", "holding")
    assert code == 0, err
    code, out, err = await cluster.kubectl("apply", "-n", "holding", "-f", await write(cluster, "held-cm.yaml", """\
apiVersion: v1
kind: ConfigMap
metadata: {name: kept, finalizers: [example.com/hold]}
data: {a: "1"}
"""))
    assert code == 0, err
    code, out, err = await cluster.kubectl("delete", "namespace", "holding", "--wait=false")
    assert code == 0, err

    async def cm_terminating() -> bool:
        shown = await get_json(cluster, "configmap", "kept", "-n", "holding")
        return bool(shown["metadata"].get("deletionTimestamp"))

    await until(cm_terminating, "the namespace's ConfigMap Terminating")
    shown = await get_json(cluster, "namespace", "holding")
    assert shown["status"]["phase"] == "Terminating", shown
    code, out, err = await cluster.kubectl("patch", "configmap", "kept", "-n", "holding", "--type=json", "-p",
                                           '[{"op": "remove", "path": "/metadata/finalizers"}]')
    assert code == 0, (out, err)

    async def namespace_gone() -> bool:
        return await gone(cluster, "namespace", "holding")

    await until(namespace_gone, "the namespace gone with its last object")


HELD_SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: NAME, FINALIZERS}
spec:
  CLUSTERIP
  selector: {app: NAME}
  ports: [{port: 80, targetPort: 8080}]
"""


def service(name: str, *, finalizers: str = "", cluster_ip: str = "") -> str:
    return (HELD_SERVICE.replace("NAME", name)
            .replace("FINALIZERS", f"finalizers: [{finalizers}]" if finalizers else "labels: {}")
            .replace("CLUSTERIP", f"clusterIP: {cluster_ip}" if cluster_ip else "type: ClusterIP"))


async def test_a_user_finalizer_holds_a_service_still_resolved_and_its_address_until_a_patch_takes_it_off(cluster):
    code, out, err = await cluster.kubectl("apply", "-f", await write(cluster, "held-svc.yaml", service(
        "held-svc", finalizers="example.com/hold")))
    assert code == 0, err
    address = (await get_json(cluster, "service", "held-svc"))["spec"]["clusterIP"]
    code, out, err = await cluster.kubectl("delete", "service", "held-svc", "--wait=false")
    assert code == 0, err
    shown = await get_json(cluster, "service", "held-svc")  # still there, Terminating
    assert shown["metadata"]["finalizers"] == ["example.com/hold"] and shown["metadata"]["deletionTimestamp"]
    assert shown["spec"]["clusterIP"] == address
    name = "held-svc.default.svc.cluster.local."
    assert await answer(cluster, name) == [(name, "A", address)]  # still resolved (and routed), as in Kubernetes
    taker = await write(cluster, "taker.yaml", service("taker", cluster_ip=address))
    code, out, err = await cluster.kubectl("apply", "-f", taker)
    assert code == 1 and "already allocated" in err, (out, err)  # a Terminating Service keeps its address

    code, out, err = await cluster.kubectl("patch", "service", "held-svc", "--type=json", "-p",
                                           '[{"op": "remove", "path": "/metadata/finalizers"}]')
    assert code == 0, (out, err)
    assert await gone(cluster, "service", "held-svc")
    assert await answer(cluster, name) == []
    code, out, err = await cluster.kubectl("apply", "-f", taker)  # its address went with it
    assert code == 0, (out, err)
    assert (await get_json(cluster, "service", "taker"))["spec"]["clusterIP"] == address


HELD_INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: held-ing, finalizers: [example.com/hold]}
spec:
  rules:
  - host: held.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: held-backend, port: {number: 80}}}}
"""


async def test_a_user_finalizer_holds_an_ingress_until_a_patch_takes_it_off(cluster):
    code, out, err = await cluster.kubectl("apply", "-f", await write(cluster, "held-ing.yaml", HELD_INGRESS))
    assert code == 0, err
    code, out, err = await cluster.kubectl("delete", "ingress", "held-ing", "--wait=false")
    assert code == 0, err
    shown = await get_json(cluster, "ingress", "held-ing")  # still there, Terminating
    assert shown["metadata"]["finalizers"] == ["example.com/hold"] and shown["metadata"]["deletionTimestamp"]
    code, out, err = await cluster.kubectl("patch", "ingress", "held-ing", "--type=merge", "-p",
                                           '{"metadata": {"finalizers": null}}')
    assert code == 0, (out, err)
    assert await gone(cluster, "ingress", "held-ing")


BARE_POD = """\
apiVersion: v1
kind: Pod
metadata: {name: NAME, FINALIZERS}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: python
    command: ["PYTHON", "-c", "import os, time\\nif 'PID_FILE': open('PID_FILE', 'w').write(str(os.getpid()))\\n\\
time.sleep(3600)"]
""".replace("PYTHON", sys.executable)


async def bare_pod(cluster, name: str, finalizers: str = "", pid_file: Path | None = None) -> None:
    """A Pod sleeping; its process writes its pid to `pid_file`."""
    text = BARE_POD.replace("NAME", name).replace("PID_FILE", str(pid_file or "")).replace(
        "FINALIZERS", f"finalizers: [{finalizers}]" if finalizers else "labels: {}")
    code, out, err = await cluster.kubectl("apply", "-f", await write(cluster, f"{name}.yaml", text))
    assert code == 0, err

    async def running() -> bool:
        return (await get_json(cluster, "pod", name))["status"].get("phase") == "Running"

    await until(running, f"{name} running")


async def test_a_deleted_pod_is_terminating_until_its_containers_stopped(cluster):
    """As a kubelet confirms a pod's deletion: a watch sees MODIFIED with the deletionTimestamp, then DELETED
    once the pod stopped; `kubectl delete` waits for it, and the pod is gone when it returns."""
    await bare_pod(cluster, "bare")
    watch = await asyncio.create_subprocess_exec(
        "kubectl", "get", "pod", "bare", "-w", "--output-watch-events", "--no-headers", "-o",
        "custom-columns=EVENT:.type,DELETING:.object.metadata.deletionTimestamp",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=cluster.env())
    assert watch.stdout is not None
    try:
        first = (await asyncio.wait_for(watch.stdout.readline(), 30)).decode().split()
        assert first == ["ADDED", "<none>"], first
        code, out, err = await cluster.kubectl("delete", "pod", "bare", "--timeout=60s")
        assert code == 0, (out, err)
        assert await gone(cluster, "pod", "bare")
        events = [first]
        while events[-1][0] != "DELETED":
            line = (await asyncio.wait_for(watch.stdout.readline(), 30)).decode().split()
            assert line, f"kubectl's watch ended: {events}"
            events.append(line)
        assert [e[0] for e in events[1:]] == ["MODIFIED", "DELETED"] and events[1][1] != "<none>", events
    finally:
        watch.kill()
        await watch.wait()


async def test_a_pods_finalizer_holds_it_terminating_after_it_stopped_and_a_forced_delete_goes_at_once(cluster):
    """As on a kubelet's node: the Pod's containers stop, its object stays Terminating while a user's finalizer
    holds it (forced too), and goes once a PATCH takes the finalizer off."""
    pid_file = cluster.cache / "held-pod.pid"
    await bare_pod(cluster, "held-pod", finalizers="example.com/hold", pid_file=pid_file)

    async def started() -> str:
        return pid_file.read_text() if pid_file.exists() else ""

    pid = int(await until(started, "the held pod's pid written"))
    code, out, err = await cluster.kubectl("delete", "pod", "held-pod", "--wait=false")
    assert code == 0, (out, err)

    async def stopped() -> bool:
        return not alive(pid)

    await until(stopped, "the held pod's process stopped")
    await asyncio.sleep(2 * PASS_INTERVAL)  # the garbage collector's passes see it stopped, and leave it
    shown = await get_json(cluster, "pod", "held-pod")
    assert shown["metadata"]["deletionTimestamp"] and shown["metadata"]["finalizers"] == ["example.com/hold"]
    # its last status, as a kubelet writes a deleted pod's: terminal, its container terminated with an exit code
    (container,) = shown["status"]["containerStatuses"]
    assert shown["status"]["phase"] == "Failed" and not container["ready"], shown["status"]
    assert isinstance(container["state"]["terminated"]["exitCode"], int), container
    code, out, err = await cluster.kubectl("patch", "pod", "held-pod", "--type=merge", "-p",
                                           '{"metadata": {"finalizers": null}}')
    assert code == 0, (out, err)
    assert await gone(cluster, "pod", "held-pod")

    await bare_pod(cluster, "forced-held", finalizers="example.com/hold")
    code, out, err = await cluster.kubectl("delete", "pod", "forced-held", "--grace-period=0", "--force",
                                           "--wait=false")  # (kubectl would wait for it to go, as in Kubernetes)
    assert code == 0, (out, err)
    assert (await get_json(cluster, "pod", "forced-held"))["metadata"]["deletionTimestamp"]
    code, out, err = await cluster.kubectl("patch", "pod", "forced-held", "--type=json", "-p",
                                           '[{"op": "remove", "path": "/metadata/finalizers"}]')
    assert code == 0, (out, err)
    assert await gone(cluster, "pod", "forced-held")

    await bare_pod(cluster, "forced")
    code, out, err = await cluster.kubectl("delete", "pod", "forced", "--grace-period=0", "--force")
    assert code == 0, (out, err)
    assert await gone(cluster, "pod", "forced")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
