"""Container logs are capped and rotated as the kubelet's defaults say (10 MiB x 5 files), on both drivers;
the Docker driver lists the bridge's /32 addresses, so an agent can reclaim those no live agent owns."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from meshd.driver.base import LABEL_NAMESPACE, LABEL_POD, ContainerSpec, SandboxSpec
from meshd.model.objects import Container

pytestmark = pytest.mark.timeout(120)


def pod_spec(name: str) -> SandboxSpec:
    return SandboxSpec(namespace="default", pod=name, hostname=name,
                       labels={LABEL_NAMESPACE: "default", LABEL_POD: name})


@pytest.fixture
async def process_driver(agent_id: str, tmp_path: Path) -> AsyncIterator[Any]:
    """A process driver that rotates logs past 64 KiB, checked every 50 ms."""
    from meshd.driver.process import ProcessDriver

    driver = ProcessDriver(agent_id=agent_id, state_dir=tmp_path / "state", log_max_size=64 * 1024,
                           log_check_interval=0.05)
    await driver.start()
    yield driver
    for observed in await driver.list_managed():
        await driver.remove_container(observed.id)
    await driver.close()


async def test_process_driver_rotates_a_container_log_and_keeps_five_files(process_driver: Any) -> None:
    spec = pod_spec("chatty")
    sandbox = await process_driver.create_sandbox(spec)
    writer = ("import sys, time\n"
              "for i in range(4000):\n"
              "    print(f'{i:06d} ' + 'x' * 1000, flush=True)\n"
              "    time.sleep(0.0005)\n")
    cid = await process_driver.start_container(ContainerSpec(sandbox=sandbox, spec=spec, container=Container(
        name="c", image="python", command=(sys.executable, "-c", writer))))
    live = process_driver.logs_dir / f"{cid}.log"

    def files() -> list[Path]:
        return sorted(process_driver.logs_dir.glob(f"{cid}.log*"))

    for _ in range(2000):  # until the writer is done
        observed = await process_driver.inspect(cid)
        if observed is None or observed.state != "running":
            break
        await asyncio.sleep(0.02)
    names = [p.name for p in files()]
    assert f"{cid}.log.1" in names and f"{cid}.log.5" not in names, names
    total = sum(p.stat().st_size for p in files())
    assert total < 4000 * 1008 / 2, total  # ~4 MB were written; at most 5 files of about 64 KiB are kept
    # what is kept is the newest output, in order
    tail = live.read_bytes().splitlines() or Path(f"{live}.1").read_bytes().splitlines()
    assert tail[-1].startswith(b"003999 ")
    await process_driver.remove_container(cid)
    for _ in range(500):  # the driver's writer thread removes them
        if not files():
            break
        await asyncio.sleep(0.01)
    assert files() == []  # removing a container removes its rotated logs too


@pytest.mark.docker
async def test_docker_containers_get_the_kubelets_log_limits(docker_driver: Any, busybox_image: str,
                                                            docker_client: Any) -> None:
    spec = pod_spec("logs")
    sandbox = await docker_driver.create_sandbox(spec)
    cid = await docker_driver.start_container(ContainerSpec(sandbox=sandbox, spec=spec, container=Container(
        name="c", image=busybox_image, command=("sleep", "30"))))
    config = (await asyncio.to_thread(docker_client.api.inspect_container, cid))["HostConfig"]["LogConfig"]
    assert config == {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "5"}}


@pytest.mark.docker
async def test_docker_driver_lists_the_bridge_addresses(docker_driver: Any) -> None:
    if os.geteuid() != 0:
        pytest.skip("adding addresses to the bridge needs root")
    vip = f"10.213.255.{200 + secrets.randbelow(50)}"
    await docker_driver.add_service_address(vip)
    try:
        assert vip in await docker_driver.service_addresses()
    finally:
        await docker_driver.remove_service_address(vip)
    assert vip not in await docker_driver.service_addresses()
