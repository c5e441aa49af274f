"""What only the process driver does: adoption across a real agent death, POD_IP/PORT env, honest limits."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from meshd.driver.base import LABEL_NAMESPACE, LABEL_POD, ContainerSpec, SandboxSpec
from meshd.driver.process import ProcessDriver
from meshd.model.objects import Container, ContainerPort, ResourceList, Resources

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_blocking_calls")]

AGENT_THAT_DIES = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from meshd.driver.base import ContainerSpec, SandboxSpec
    from meshd.driver.process import ProcessDriver
    from meshd.model.objects import Container

    async def main():
        driver = ProcessDriver(agent_id=sys.argv[1], state_dir=sys.argv[2])
        await driver.start()
        spec = SandboxSpec(namespace="default", pod="p", hostname="p", labels={})
        sandbox = await driver.create_sandbox(spec)
        app = Container(name="app", image="-", command=("sh", "-c", "while :; do sleep 1; done"))
        cid = await driver.start_container(ContainerSpec(sandbox=sandbox, spec=spec, container=app))
        print(json.dumps([sandbox.id, cid]), flush=True)
        os._exit(0)  # no cleanup at all, as after kill -9

    asyncio.run(main())
    """
)


async def test_adopts_processes_of_an_agent_that_died(agent_id: str, tmp_path: Path) -> None:
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", AGENT_THAT_DIES, agent_id, str(tmp_path)],
        capture_output=True, text=True, check=True, timeout=30,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    sandbox_id, cid = json.loads(out.stdout)
    driver = ProcessDriver(agent_id=agent_id, state_dir=tmp_path)
    await driver.start()
    try:
        observed = {o.id: o for o in await driver.list_managed()}
        assert set(observed) == {sandbox_id, cid} and observed[cid].state == "running"
        events = driver.events()
        waiter = asyncio.create_task(anext(events))
        await asyncio.sleep(0)
        await driver.stop_container(cid, grace_seconds=5)
        died = await asyncio.wait_for(waiter, 10)
        assert (died.action, died.id) == ("die", cid)  # no exit code: the process was not our child
        await events.aclose()
    finally:
        for o in await driver.list_managed():
            await driver.remove_container(o.id)
        await driver.close()


async def test_pod_env_and_unenforced_limits_are_announced(
    process_driver: ProcessDriver, caplog: pytest.LogCaptureFixture
) -> None:
    spec = SandboxSpec(
        namespace="default",
        pod="envy",
        hostname="envy",
        labels={LABEL_NAMESPACE: "default", LABEL_POD: "envy"},
    )
    sandbox = await process_driver.create_sandbox(spec)
    assert sandbox.address.startswith("127.213.")
    app = Container(
        name="app",
        image="-",
        command=("sh", "-c", "echo $POD_IP $PORT $PORT_METRICS $HOSTNAME $POD_NAMESPACE"),
        ports=(ContainerPort(8080, name="http"), ContainerPort(9100, name="metrics")),
        resources=Resources(limits=ResourceList(memory_bytes=64 << 20)),
    )
    with caplog.at_level(logging.WARNING):
        cid = await process_driver.start_container(ContainerSpec(sandbox=sandbox, spec=spec, container=app))
    assert "not enforced" in caplog.text
    output = b"".join([c async for c in process_driver.logs(cid, follow=True)])
    assert output.decode().split() == [sandbox.address, "8080", "9100", "envy", "default"]


async def test_a_missing_command_is_a_clear_error(process_driver: ProcessDriver) -> None:
    from meshd.driver import DriverError

    spec = SandboxSpec(namespace="default", pod="argless", hostname="argless", labels={})
    sandbox = await process_driver.create_sandbox(spec)
    with pytest.raises(DriverError, match="needs `command`"):
        await process_driver.start_container(
            ContainerSpec(sandbox=sandbox, spec=spec, container=Container(name="app", image="nginx"))
        )
    with pytest.raises(DriverError, match="cannot run"):
        await process_driver.start_container(
            ContainerSpec(
                sandbox=sandbox, spec=spec, container=Container(name="app", image="-", command=("/no/such",))
            )
        )
