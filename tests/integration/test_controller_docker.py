"""The replica controller on the real Docker engine: replicas come up and are kept at the desired count."""

from __future__ import annotations

import asyncio
import subprocess
import textwrap
from typing import Any

import docker
import pytest

from meshd.model.endpoints import ServiceKey
from tests.integration.agent_harness import agent_options, deployment_yaml, eventually, pods, ready_pods, started_agent

pytestmark = [pytest.mark.docker]


def deployment(name: str, *, replicas: int = 3, image: str = "meshd/busybox:latest", extra: str = "",
               command: str = '["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/"]') -> str:
    return deployment_yaml(name, replicas=replicas, image=image, command=command) + extra


def engine_containers(docker_client: Any, agent_id: str) -> list[Any]:
    """The agent's containers, inspected; listed again when one went between the list and its inspection."""
    while True:
        try:
            return docker_client.containers.list(all=True, filters={"label": f"io.meshd.agent={agent_id}"})
        except docker.errors.NotFound:
            continue


@pytest.fixture
async def agent(tmp_path, agent_id, busybox_image, pause_image):
    agent = await started_agent(agent_options(tmp_path, agent_id))
    yield agent
    await agent.close(stop_pods=True)


async def test_replicas_come_up_and_a_killed_container_is_replaced(agent, docker_client, agent_id):
    await agent.controller.apply(deployment("web"))
    await eventually(lambda: len(ready_pods(agent, "web-")) == 3)
    victim = pods(agent, "web-")[0]
    old_id = victim.containers["main"].id
    subprocess.run(["docker", "kill", old_id], check=True, capture_output=True)
    await eventually(lambda: victim.containers["main"].restart_count == 1 and victim.ready)
    assert victim.containers["main"].id != old_id
    # docker rm -f is replaced too
    other = pods(agent, "web-")[1]
    subprocess.run(["docker", "rm", "-f", other.containers["main"].id], check=True, capture_output=True)
    await eventually(lambda: other.containers["main"].restart_count == 1 and other.ready)
    assert len(pods(agent, "web-")) == 3
    running = [c for c in engine_containers(docker_client, agent_id) if c.status == "running"]
    assert len(running) == 6  # 3 infra + 3 app containers, nothing duplicated


async def test_crash_loop_backs_off_and_counts_restarts(agent):
    await agent.controller.apply(deployment("crash", replicas=1, command='["/bin/busybox", "sh", "-c", "exit 3"]'))
    await eventually(lambda: pods(agent, "crash-") and pods(agent, "crash-")[0].containers["main"].restart_count >= 2,
                     timeout=30)
    status = pods(agent, "crash-")[0].containers["main"]
    await eventually(lambda: status.reason == "CrashLoopBackOff")
    assert status.last_termination and status.last_termination["exitCode"] == 3


async def test_scale_up_and_down_then_delete_leaves_nothing(agent, docker_client, agent_id):
    await agent.controller.apply(deployment("scale"))
    await eventually(lambda: len(ready_pods(agent, "scale-")) == 3)
    await agent.controller.scale("Deployment", "default", "scale", 5)
    await eventually(lambda: len(ready_pods(agent, "scale-")) == 5)
    await agent.controller.scale("Deployment", "default", "scale", 1)
    await eventually(lambda: len(pods(agent, "scale-")) == 1)
    await eventually(lambda: len(engine_containers(docker_client, agent_id)) == 2)
    await agent.controller.delete("Deployment", "default", "scale")
    await eventually(lambda: not pods(agent) and not engine_containers(docker_client, agent_id))


async def test_applying_the_same_manifest_twice_changes_nothing(agent):
    first, _ = await agent.controller.apply(deployment("idem", replicas=2))
    await eventually(lambda: len(ready_pods(agent, "idem-")) == 2)
    names = {w.name for w in pods(agent, "idem-")}
    second, _ = await agent.controller.apply(deployment("idem", replicas=2))
    assert [r.action for r in first] == ["created"] and [r.action for r in second] == ["unchanged"]
    assert {w.name for w in pods(agent, "idem-")} == names


async def test_agent_restart_adopts_running_pods_without_duplicates(tmp_path, agent_id, docker_client,
                                                                    busybox_image, pause_image):
    options = agent_options(tmp_path, agent_id)
    first = await started_agent(options)
    await first.controller.apply(deployment("adopt"))
    await eventually(lambda: len(ready_pods(first, "adopt-")) == 3)
    before = sorted(c.id for c in engine_containers(docker_client, agent_id))
    await first.close(stop_pods=False)  # as if killed: containers keep running
    # a stray labelled container that no object wants is removed by the next agent
    stray = docker_client.containers.run(
        "meshd/busybox:latest", ["sleep", "300"], detach=True,
        labels={"io.meshd.managed": "true", "io.meshd.agent": agent_id, "io.meshd.namespace": "default",
                "io.meshd.pod": "nobody-wants-me", "io.meshd.container": "main"})
    second = await started_agent(agent_options(tmp_path, agent_id, api=options.api, dns=options.dns))
    try:
        await eventually(lambda: len(ready_pods(second, "adopt-")) == 3)
        await eventually(lambda: stray.id not in {c.id for c in engine_containers(docker_client, agent_id)})
        after = sorted(c.id for c in engine_containers(docker_client, agent_id))
        assert after == before
    finally:
        await second.close(stop_pods=True)


async def test_agent_restart_leaves_a_finished_pod_finished(tmp_path, agent_id, docker_client,
                                                            busybox_image, pause_image):
    """restartPolicy Never / OnFailure: a pod that completed while an agent ran is not run again by the next."""
    manifest = textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: once-%s}
        spec:
          restartPolicy: %s
          containers:
          - name: main
            image: meshd/busybox:latest
            imagePullPolicy: IfNotPresent
            command: ["/bin/busybox", "sh", "-c", "exit %d"]
        """)
    options = agent_options(tmp_path, agent_id)
    first = await started_agent(options)
    for name, policy, code in (("never", "Never", 3), ("onfailure", "OnFailure", 0)):
        await first.controller.apply(manifest % (name, policy, code))
    await eventually(lambda: sorted(w.phase for w in pods(first, "once-")) == ["Failed", "Succeeded"])
    before = sorted(c.id for c in engine_containers(docker_client, agent_id))
    await first.close(stop_pods=False)
    second = await started_agent(agent_options(tmp_path, agent_id, api=options.api, dns=options.dns))
    try:
        await eventually(lambda: sorted(w.phase for w in pods(second, "once-")) == ["Failed", "Succeeded"])
        for worker in pods(second, "once-"):
            main = worker.containers["main"]
            assert (main.restart_count, main.phase) == (0, "terminated")
            assert main.exit_code == (3 if worker.name == "once-never" else 0)
        assert sorted(c.id for c in engine_containers(docker_client, agent_id)) == before
    finally:
        await second.close(stop_pods=True)


async def test_the_previous_instance_is_kept_for_its_logs_and_only_one(agent, docker_client, agent_id):
    """`logs --previous`: after a restart the instance before is kept (stopped) and its output readable; after
    more restarts still only one previous instance exists; deleting the pod removes it too."""
    await agent.controller.apply(textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: flaky}
        spec:
          terminationGracePeriodSeconds: 1
          containers:
          - name: main
            image: meshd/busybox:latest
            imagePullPolicy: IfNotPresent
            command: ["/bin/sh", "-c", "echo run; exit 1"]
        """))
    (worker,) = await eventually(lambda: pods(agent, "flaky"))
    main = worker.containers["main"]
    await eventually(lambda: main.restart_count >= 3 and main.previous_id, timeout=30)
    output = b"".join([c async for c in agent.controller.driver.logs(main.previous_id, follow=False)])
    assert output == b"run\n"

    def instances(*labels: str) -> list[Any]:  # sparse: no inspect that races with a removal
        wanted = [f"io.meshd.agent={agent_id}", "io.meshd.pod=flaky", *labels]
        return docker_client.containers.list(all=True, sparse=True, filters={"label": wanted})

    await eventually(lambda: len(instances("io.meshd.container=main")) <= 2)  # current + one previous, no pile
    await agent.controller.delete("Pod", "default", "flaky")
    await eventually(lambda: not instances())


async def test_rollout_history_shows_the_change_cause_of_each_revision(agent):
    """kubernetes.io/change-cause on the Deployment goes onto the ReplicaSet it makes current, as in Kubernetes,
    so `rollout history` lists it per revision (also when a rollback reuses an old ReplicaSet)."""
    def annotated(cause: str, root: str) -> str:
        return deployment("hist", replicas=1).replace(
            "metadata: {name: hist}", f'metadata: {{name: hist, annotations: {{kubernetes.io/change-cause: "{cause}"}}}}'
        ).replace('"-h", "/"', f'"-h", "{root}"')

    def causes() -> dict[int, str]:
        return {r.revision: r.rs.metadata.annotations.get("kubernetes.io/change-cause", "")
                for r in agent.controller.history("default", "hist")}

    await agent.controller.apply(annotated("first", "/"))
    await eventually(lambda: causes() == {1: "first"})
    await agent.controller.apply(annotated("second", "/etc"))
    await eventually(lambda: causes() == {1: "first", 2: "second"})
    await agent.controller.apply(annotated("back to the first", "/"))
    await eventually(lambda: causes() == {2: "second", 3: "back to the first"})


async def test_deleting_a_bare_replicaset_deletes_its_pods(agent, docker_client, agent_id):
    manifest = deployment("bare", replicas=2).replace("kind: Deployment", "kind: ReplicaSet")
    await agent.controller.apply(manifest)
    await eventually(lambda: len(ready_pods(agent, "bare-")) == 2)
    await agent.controller.delete("ReplicaSet", "default", "bare")
    await eventually(lambda: not pods(agent, "bare-") and ("default", "bare") not in agent.controller.replicasets)
    await eventually(lambda: not docker_client.containers.list(
        all=True, sparse=True, filters={"label": [f"io.meshd.agent={agent_id}", "io.meshd.owner=bare"]}))
    # a ReplicaSet left without its owner (as an older agent's delete left them in the state) goes too
    await agent.controller.apply(manifest.replace("bare", "orphan"))
    await eventually(lambda: len(ready_pods(agent, "orphan-")) == 2)
    del agent.controller.objects[("ReplicaSet", "default", "orphan")]
    agent.controller.kick()
    await eventually(lambda: not pods(agent, "orphan-") and ("default", "orphan") not in agent.controller.replicasets)


async def test_two_containers_of_a_pod_share_localhost(agent, docker_client):
    manifest = textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: duo}
        spec:
          terminationGracePeriodSeconds: 1
          containers:
          - name: server
            image: meshd/busybox:latest
            imagePullPolicy: IfNotPresent
            command: ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"]
          - name: client
            image: meshd/busybox:latest
            imagePullPolicy: IfNotPresent
            command: ["/bin/busybox", "sleep", "300"]
        """)
    await agent.controller.apply(manifest)
    await eventually(lambda: len(ready_pods(agent, "duo")) == 1)
    client_id = pods(agent, "duo")[0].containers["client"].id

    def fetch() -> bool:
        result = docker_client.containers.get(client_id).exec_run(["wget", "-qO-", "http://127.0.0.1:8080/hostname"])
        return result.exit_code == 0

    await eventually(fetch, timeout=10)


async def test_memory_limit_is_enforced_and_reported_as_oom(agent):
    manifest = deployment(
        "hog", replicas=1,
        command='["/bin/busybox", "sh", "-c", "x=$(/bin/busybox head -c 80000000 /dev/zero | /bin/busybox tr \'\\\\0\' a); sleep 60"]',
    ).replace("ports: [{containerPort: 8080, name: http}]",
              "ports: [{containerPort: 8080, name: http}]\n        resources: {limits: {memory: 16Mi}}")
    await agent.controller.apply(manifest)
    await eventually(lambda: pods(agent, "hog-") and pods(agent, "hog-")[0].containers["main"].last_termination,
                     timeout=30)
    assert pods(agent, "hog-")[0].containers["main"].last_termination["reason"] == "OOMKilled"


async def test_a_broken_manifest_changes_nothing(agent):
    from meshd.manifests import ManifestError

    await agent.controller.apply(deployment("keep", replicas=1))
    await eventually(lambda: len(ready_pods(agent, "keep-")) == 1)
    broken = deployment("keep", replicas=4) + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec: {containers: [{name: x}]}\n"
    with pytest.raises(ManifestError):
        await agent.controller.apply(broken)
    assert agent.controller.objects[("Deployment", "default", "keep")].obj.replicas == 1
    assert len(pods(agent, "keep-")) == 1


async def test_pre_stop_hook_runs_before_the_container_is_stopped(agent):
    from aiohttp import web

    calls: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        calls.append(request.query.get("pod", ""))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/bye", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "10.213.0.1", 0)  # the bridge gateway: the host, as pods see it
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        await agent.controller.apply(deployment("hook", replicas=1, extra="").replace(
            "ports: [{containerPort: 8080, name: http}]",
            "ports: [{containerPort: 8080, name: http}]\n"
            "        lifecycle:\n"
            "          preStop:\n"
            f'            exec: {{command: ["/bin/sh", "-c", "wget -qO- http://10.213.0.1:{port}/bye?pod=$HOSTNAME"]}}'))
        await eventually(lambda: len(ready_pods(agent, "hook-")) == 1)
        name = pods(agent, "hook-")[0].name
        await agent.controller.delete("Deployment", "default", "hook")
        await eventually(lambda: not pods(agent, "hook-"))
        assert calls == [name]
    finally:
        await runner.cleanup()


async def test_a_rollout_resumes_after_an_agent_restart_without_duplicate_or_lost_pods(
        tmp_path, agent_id, docker_client, busybox_image, pause_image):
    options = agent_options(tmp_path, agent_id)
    first = await started_agent(options)
    await first.controller.apply(deployment("resume", replicas=3))
    await eventually(lambda: len(ready_pods(first, "resume-")) == 3)
    changed = deployment("resume", replicas=3).replace('"-h", "/"', '"-h", "/etc"')
    await first.controller.apply(changed)
    await eventually(lambda: len({w.identity.template_hash for w in pods(first, "resume-")}) == 2)
    await first.close(stop_pods=False)  # the agent dies midway through the rollout
    second = await started_agent(agent_options(tmp_path, agent_id, api=options.api, dns=options.dns))
    try:
        await eventually(lambda: getattr(second.controller.progress.get(("default", "resume")), "complete", False),
                         timeout=60)
        await eventually(lambda: len(pods(second, "resume-")) == 3)  # the last old pod finishes stopping
        assert len({w.identity.template_hash for w in pods(second, "resume-")}) == 1
        await eventually(lambda: len(engine_containers(docker_client, agent_id)) == 6)
    finally:
        await second.close(stop_pods=True)


async def test_pods_that_do_not_fit_the_node_stay_pending_with_the_reason(tmp_path, agent_id, busybox_image,
                                                                         pause_image):
    from meshd.api import kube

    agent = await started_agent(agent_options(tmp_path, agent_id, node_cpus="1", node_memory="1Gi"))
    try:
        await agent.controller.apply(deployment("big", replicas=3).replace(
            "ports: [{containerPort: 8080, name: http}]",
            "ports: [{containerPort: 8080, name: http}]\n        resources: {requests: {cpu: 400m, memory: 64Mi}}"))
        await eventually(lambda: len(ready_pods(agent, "big-")) == 2)
        pending = [w for w in pods(agent, "big-") if not w.scheduled]
        assert len(pending) == 1
        status = kube.pod(pending[0])["status"]
        scheduled = next(c for c in status["conditions"] if c["type"] == "PodScheduled")
        assert status["phase"] == "Pending" and "Insufficient cpu" in scheduled["message"]
        assert status["containerStatuses"] == []  # as the scheduler leaves it: `get pods` shows Pending
        await agent.controller.scale("Deployment", "default", "big", 2)  # room again: nothing stays pending
        await eventually(lambda: len(pods(agent, "big-")) == 2 and all(w.scheduled for w in pods(agent, "big-")))
    finally:
        await agent.close(stop_pods=True)


async def test_a_missing_image_is_reported_and_retried_without_counting_restarts(agent):
    await agent.controller.apply(deployment("ghost", replicas=1, image="meshd-test/does-not-exist:1"))
    await eventually(lambda: pods(agent, "ghost-") and pods(agent, "ghost-")[0].containers["main"].reason
                     in ("ErrImagePull", "ImagePullBackOff"))
    status = pods(agent, "ghost-")[0].containers["main"]
    await eventually(lambda: status.reason == "ImagePullBackOff", timeout=20)
    assert status.restart_count == 0 and "does-not-exist" in status.message


async def test_a_killed_infra_container_brings_the_whole_pod_back(agent):
    await agent.controller.apply(deployment("infra", replicas=1))
    await eventually(lambda: len(ready_pods(agent, "infra-")) == 1)
    worker = pods(agent, "infra-")[0]
    old_sandbox = worker.sandbox.id
    subprocess.run(["docker", "kill", old_sandbox], check=True, capture_output=True)
    await eventually(lambda: worker.sandbox and worker.sandbox.id != old_sandbox and worker.ready, timeout=30)
    assert worker.containers["main"].restart_count >= 1


async def test_two_agents_on_one_engine_each_resolve_their_own_services(tmp_path, agent_id, docker_client,
                                                                        busybox_image, pause_image):
    """Only one agent can hold the bridge gateway's port 53; the other gives its pods a resolver of its own,
    so `http://who/` in its pods means its own Service, not a name the first agent does not know."""
    import socket

    from meshd.driver.docker import DockerDriver

    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the other agent: the gateway's port 53 is taken
    try:
        await DockerDriver(agent_id=agent_id, pause_image=pause_image).start()  # the bridge exists
        other.bind(("10.213.0.1", 53))
    except OSError:
        pass  # another agent on this engine holds it already
    second = await started_agent(agent_options(tmp_path, agent_id))
    try:
        assert second.driver.pod_resolver is not None
        await second.controller.apply(textwrap.dedent("""\
            apiVersion: v1
            kind: Service
            metadata: {name: who-is-second}
            spec:
              selector: {app: nobody}
              ports: [{port: 80}]
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: asker}
            spec:
              containers:
              - name: main
                image: meshd/busybox:latest
                imagePullPolicy: IfNotPresent
                command: ["/bin/busybox", "sleep", "300"]
            """))
        (worker,) = await eventually(lambda: ready_pods(second, "asker"))
        address = second.registry.service(ServiceKey("default", "who-is-second")).address
        container = await asyncio.to_thread(docker_client.containers.get, worker.containers["main"].id)

        for _ in range(10):  # exec in a thread: the agent answers DNS on this loop
            result = await asyncio.to_thread(container.exec_run, ["timeout", "5", "nslookup", "who-is-second"])
            if address.encode() in result.output:  # found through the search path
                break
            await asyncio.sleep(0.2)
        assert address.encode() in result.output, result.output
    finally:
        other.close()
        await second.close(stop_pods=True)
    if second.driver.pod_resolver:
        out = subprocess.run(["ip", "-o", "addr", "show", "meshd0"], capture_output=True, text=True).stdout
        assert f"{second.driver.pod_resolver}/32" not in out  # `meshd up` semantics: its address goes too
