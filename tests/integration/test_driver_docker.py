"""What only the Docker driver does: limits enforced by the kernel, OOM reported, engine events for kills and
removals done behind meshd's back, shared emptyDir volumes, pod DNS config, image pull policies, a local registry."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from meshd.driver import DriverError
from meshd.driver.base import (
    LABEL_NAMESPACE,
    LABEL_POD,
    ContainerEvent,
    ContainerSpec,
    Sandbox,
    SandboxSpec,
)
from meshd.driver.docker import DockerDriver, pod_nameservers
from meshd.model.objects import Container, ResourceList, Resources, Volume, VolumeMount
from tests.integration.agent_harness import free_port

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180), pytest.mark.usefixtures("no_blocking_calls")]

SLEEPER = ("sh", "-c", "while :; do sleep 1; done")


def pod_spec(name: str, **kw: Any) -> SandboxSpec:
    return SandboxSpec(
        namespace="default",
        pod=name,
        hostname=name,
        labels={LABEL_NAMESPACE: "default", LABEL_POD: name},
        **kw,
    )


async def start(driver: DockerDriver, sandbox: Sandbox, spec: SandboxSpec, container: Container) -> str:
    return await driver.start_container(ContainerSpec(sandbox=sandbox, spec=spec, container=container))


@pytest.fixture
async def event_queue(docker_driver: DockerDriver) -> AsyncIterator[asyncio.Queue[ContainerEvent]]:
    queue: asyncio.Queue[ContainerEvent] = asyncio.Queue()

    async def pump() -> None:
        async for event in docker_driver.events():
            queue.put_nowait(event)

    task = asyncio.create_task(pump())
    await asyncio.sleep(0.3)
    yield queue
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def next_event(queue: asyncio.Queue[ContainerEvent], action: str, cid: str) -> ContainerEvent:
    while True:
        event = await asyncio.wait_for(queue.get(), 30)
        if event.action == action and event.id == cid:
            return event


async def test_memory_limit_is_enforced_and_oom_is_reported(
    docker_driver: DockerDriver,
    busybox_image: str,
    docker_client: Any,
    event_queue: asyncio.Queue[ContainerEvent],
) -> None:
    spec = pod_spec("hungry")
    sandbox = await docker_driver.create_sandbox(spec)
    limits = ResourceList(memory_bytes=32 * 1024 * 1024, cpu_millicores=500)
    hog = Container(
        name="hog",
        image=busybox_image,
        command=("sh", "-c", "sleep 0.3; dd if=/dev/zero of=/dev/null bs=128M count=1"),
        resources=Resources(limits=limits),
    )
    cid = await start(docker_driver, sandbox, spec, hog)
    host_config = docker_client.api.inspect_container(cid)["HostConfig"]
    assert host_config["Memory"] == 32 * 1024 * 1024 and host_config["NanoCpus"] == 500_000_000
    await next_event(event_queue, "oom", cid)
    died = await next_event(event_queue, "die", cid)
    assert died.exit_code == 137
    observed = await docker_driver.inspect(cid)
    assert observed is not None and observed.oom_killed and observed.exit_code == 137


async def test_docker_kill_and_rm_behind_our_back_produce_events(
    docker_driver: DockerDriver,
    busybox_image: str,
    docker_client: Any,
    event_queue: asyncio.Queue[ContainerEvent],
) -> None:
    spec = pod_spec("victim")
    sandbox = await docker_driver.create_sandbox(spec)
    cid = await start(
        docker_driver, sandbox, spec, Container(name="app", image=busybox_image, command=SLEEPER)
    )
    await next_event(event_queue, "start", cid)
    killed_at = time.time()
    await asyncio.to_thread(subprocess.run, ["docker", "kill", cid], check=True, capture_output=True)
    died = await next_event(event_queue, "die", cid)
    print(f"docker kill -> die event: {(time.time() - killed_at) * 1000:.0f} ms (incl. the CLI)")
    assert died.exit_code == 137 and died.labels[LABEL_POD] == "victim"

    other = await start(
        docker_driver, sandbox, spec, Container(name="other", image=busybox_image, command=SLEEPER)
    )
    await asyncio.to_thread(docker_client.api.remove_container, other, force=True)
    assert (await next_event(event_queue, "destroy", other)).labels[LABEL_POD] == "victim"


async def test_emptydir_is_shared_and_memory_medium_is_tmpfs(
    docker_driver: DockerDriver, busybox_image: str
) -> None:
    spec = pod_spec("sharing", volumes=(Volume("data"), Volume("scratch", medium="Memory")))
    sandbox = await docker_driver.create_sandbox(spec)
    mounts = (VolumeMount("data", "/data"), VolumeMount("scratch", "/scratch"))
    writer = Container(
        name="writer",
        image=busybox_image,
        command=("sh", "-c", "echo shared > /data/f; echo mem > /scratch/g; while :; do sleep 1; done"),
        volume_mounts=mounts,
    )
    reader = Container(name="reader", image=busybox_image, command=SLEEPER, volume_mounts=mounts)
    await start(docker_driver, sandbox, spec, writer)
    rid = await start(docker_driver, sandbox, spec, reader)
    for _ in range(50):
        result = await docker_driver.exec(
            rid, ("sh", "-c", "cat /data/f /scratch/g; grep /scratch /proc/mounts"), timeout=10
        )
        if result.exit_code == 0:
            break
        await asyncio.sleep(0.1)
    assert result.output.startswith(b"shared\nmem\n") and b"tmpfs" in result.output
    await docker_driver.remove_sandbox(sandbox.id)
    assert await docker_driver.list_managed() == []


async def test_emptydir_starts_empty_and_world_writable(
    docker_driver: DockerDriver, busybox_image: str, docker_client: Any
) -> None:
    """As the kubelet makes it: 0777, so an image running as a non-root USER can write, and empty even when
    mounted over a directory of the image (Docker would copy that directory's files and mode into it)."""
    spec = pod_spec("emptydir", volumes=(Volume("v"),))
    sandbox = await docker_driver.create_sandbox(spec)
    over = Container(name="over", image=busybox_image, command=SLEEPER,
                     volume_mounts=(VolumeMount("v", "/usr/bin"),))
    await start(docker_driver, sandbox, spec, over)  # the first mount: where Docker would copy /usr/bin in
    cid = await start(docker_driver, sandbox, spec, Container(
        name="app", image=busybox_image, command=SLEEPER, volume_mounts=(VolumeMount("v", "/data"),)))
    container = await asyncio.to_thread(docker_client.containers.get, cid)
    listing = await asyncio.to_thread(container.exec_run, ["ls", "-A", "/data"])
    assert (listing.exit_code, listing.output) == (0, b"")
    mode = await asyncio.to_thread(container.exec_run, ["stat", "-c", "%a", "/data"])
    assert mode.output.strip() == b"777"
    write = await asyncio.to_thread(container.exec_run, ["sh", "-c", "echo x > /data/mine"], user="65534")
    assert write.exit_code == 0, write.output
    await docker_driver.remove_sandbox(sandbox.id)
    assert await docker_driver.list_managed() == []


async def test_pod_gets_hostname_and_cluster_dns_config(
    docker_driver: DockerDriver, busybox_image: str, docker_client: Any
) -> None:
    spec = pod_spec("named", dns_search=("default.svc.cluster.local", "svc.cluster.local", "cluster.local"))
    sandbox = await docker_driver.create_sandbox(spec)
    assert sandbox.address.startswith("10.213.")
    cid = await start(
        docker_driver, sandbox, spec, Container(name="app", image=busybox_image, command=SLEEPER)
    )
    result = await docker_driver.exec(cid, ("sh", "-c", "hostname; cat /etc/resolv.conf"), timeout=10)
    text = result.output.decode()
    assert text.startswith("named\n")
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in text and "ndots:5" in text
    # the engine's resolver asks the agent first, then the host's upstream servers for what the agent refuses
    dns = (await asyncio.to_thread(docker_client.api.inspect_container, sandbox.id))["HostConfig"]["Dns"]
    assert dns[0] == docker_driver.gateway
    host = "\n".join(p.read_text() for p in (Path("/etc/resolv.conf"), Path("/run/systemd/resolve/resolv.conf"))
                     if p.exists())
    assert dns == pod_nameservers(docker_driver.gateway, host)


async def test_command_replaces_entrypoint_and_args_replace_cmd(
    docker_driver: DockerDriver, busybox_image: str
) -> None:
    spec = pod_spec("argv")
    sandbox = await docker_driver.create_sandbox(spec)
    only_args = Container(
        name="a", image=busybox_image, args=("echo", "from-args")
    )  # replaces the image's CMD
    both = Container(name="b", image=busybox_image, command=("echo", "cmd"), args=("and-args",))
    outputs = []
    for container in (only_args, both):
        cid = await start(docker_driver, sandbox, spec, container)
        outputs.append(b"".join([c async for c in docker_driver.logs(cid, follow=True)]))
    assert outputs == [b"from-args\n", b"cmd and-args\n"]


async def test_image_pull_policies_without_a_registry(
    docker_driver: DockerDriver, busybox_image: str
) -> None:
    spec = pod_spec("policies")
    sandbox = await docker_driver.create_sandbox(spec)
    missing = Container(
        name="m", image="meshd-test/does-not-exist:1", command=SLEEPER, image_pull_policy="Never"
    )
    with pytest.raises(DriverError, match="not present and imagePullPolicy is Never"):
        await start(docker_driver, sandbox, spec, missing)
    always = Container(name="a", image=busybox_image, command=SLEEPER, image_pull_policy="Always")
    assert await start(docker_driver, sandbox, spec, always)  # the pull fails; the local image is used


async def test_unreachable_engine_gives_a_clear_error(agent_id: str, tmp_path: Path) -> None:
    driver = DockerDriver(agent_id=agent_id, docker_host=f"unix://{tmp_path}/nothing.sock", call_timeout=5)
    with pytest.raises(
        DriverError, match="Docker engine not reachable at .*start dockerd or set DOCKER_HOST"
    ):
        await driver.start()
    await driver.close()


async def test_usage_reads_the_cgroup(docker_driver: DockerDriver, busybox_image: str) -> None:
    spec = pod_spec("busy")
    sandbox = await docker_driver.create_sandbox(spec)
    cid = await start(
        docker_driver, sandbox, spec, Container(name="app", image=busybox_image, command=SLEEPER)
    )
    usage = await docker_driver.usage(cid)
    if usage is None:
        pytest.skip("cgroup v1 files of docker containers are not visible here")
    assert usage.memory_bytes > 0 and usage.cpu_seconds >= 0


@pytest.fixture
def local_registry(tmp_path: Path) -> Any:
    """A `docker-registry` (Debian's distribution registry) on 127.0.0.1:<port>, no auth, storage in tmp_path."""
    binary = Path("/usr/bin/docker-registry")
    if not binary.exists():
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'data'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    proc = subprocess.Popen(
        [str(binary), "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            break
        if proc.poll() is not None:
            pytest.fail(f"docker-registry exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.1)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.slow
async def test_if_not_present_pulls_from_a_local_registry(
    docker_driver: DockerDriver, busybox_image: str, docker_client: Any, local_registry: str
) -> None:
    ref = f"{local_registry}/meshd-test/pulled:{docker_driver.agent_id}"
    image = docker_client.images.get(busybox_image)
    image.tag(ref)
    try:
        for line in docker_client.api.push(ref, stream=True, decode=True):
            assert "error" not in line, line
        docker_client.images.remove(ref)
        spec = pod_spec("pulled")
        sandbox = await docker_driver.create_sandbox(spec)
        cid = await start(docker_driver, sandbox, spec, Container(name="app", image=ref, command=SLEEPER))
        assert docker_client.api.inspect_container(cid)["Config"]["Image"] == ref
        assert docker_client.images.get(ref).id == image.id
    finally:
        await docker_driver.remove_sandbox(sandbox.id) if "sandbox" in locals() else None
        with contextlib.suppress(Exception):
            docker_client.images.remove(ref)


async def test_service_address_on_the_bridge_can_be_bound(docker_driver: DockerDriver) -> None:
    if os.geteuid() != 0:
        pytest.skip("adding addresses to the bridge needs root")
    vip = f"10.213.255.{200 + secrets.randbelow(50)}"
    await docker_driver.add_service_address(vip)
    await docker_driver.add_service_address(vip)  # idempotent
    try:
        with socket.socket() as s:
            s.bind((vip, 0))
    finally:
        await docker_driver.remove_service_address(vip)
    await docker_driver.remove_service_address(vip)  # idempotent
    with pytest.raises(OSError), socket.socket() as s:
        s.bind((vip, 0))


async def test_python_app_in_a_pod_is_reachable_from_the_host_at_the_pod_address(
    docker_driver: DockerDriver, python_image: str
) -> None:
    spec = pod_spec("py")
    sandbox = await docker_driver.create_sandbox(spec)
    app = Container(name="app", image=python_image, command=("python3", "-m", "http.server", "8000"))
    await start(docker_driver, sandbox, spec, app)

    def fetch() -> bytes:
        with socket.create_connection((sandbox.address, 8000), timeout=2) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return conn.recv(100)

    for _ in range(100):
        with contextlib.suppress(OSError):
            reply = await asyncio.to_thread(fetch)
            break
        await asyncio.sleep(0.1)
    assert reply.startswith(b"HTTP/1.0 200")
