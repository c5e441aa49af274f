"""One contract, two drivers: what the controller relies on holds for Docker containers and for local processes.

Commands are busybox applets called as `busybox APPLET`, so they run the same in the busybox image and on the
host. Servers bind ${POD_IP:-127.0.0.1}: localhost in a Docker pod's shared namespace, the pod's loopback
address for the process driver.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from meshd.driver import ExecTimeout, make_driver
from meshd.driver.base import (
    INFRA_CONTAINER,
    LABEL_CONTAINER,
    LABEL_NAMESPACE,
    LABEL_OWNER,
    LABEL_POD,
    ContainerEvent,
    ContainerSpec,
    Driver,
    Sandbox,
    SandboxSpec,
)
from meshd.model.objects import Container, EnvVar

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("no_blocking_calls")]


@dataclass
class Harness:
    """A driver under test plus what the test needs to build pods for it and to start a second instance."""

    driver: Driver
    image: str
    new_driver: Callable[[], Driver]

    async def pod(self, name: str) -> tuple[Sandbox, SandboxSpec]:
        spec = SandboxSpec(
            namespace="default",
            pod=name,
            hostname=name,
            labels={LABEL_NAMESPACE: "default", LABEL_POD: name, LABEL_OWNER: name},
        )
        return await self.driver.create_sandbox(spec), spec

    async def run(self, sandbox: Sandbox, spec: SandboxSpec, name: str, script: str, **kw: Any) -> str:
        container = Container(name=name, image=self.image, command=("busybox", "sh", "-c", script), **kw)
        return await self.driver.start_container(
            ContainerSpec(sandbox=sandbox, spec=spec, container=container)
        )


@pytest.fixture(params=[pytest.param("docker", marks=pytest.mark.docker), "process"])
def driver_setup(
    request: pytest.FixtureRequest, agent_id: str, tmp_path: Path
) -> tuple[str, dict[str, Any], str, Any]:
    """(driver name, options, image, cleanup): resolved outside the event loop (image builds block)."""
    if request.param == "docker":
        cleanup = request.getfixturevalue("remove_agent_containers")
        opts: dict[str, Any] = {"agent_id": agent_id, "pause_image": request.getfixturevalue("pause_image")}
        return "docker", opts, request.getfixturevalue("busybox_image"), cleanup
    return "process", {"agent_id": agent_id, "state_dir": tmp_path / "state"}, "busybox", None


@pytest.fixture
async def harness(
    driver_setup: tuple[str, dict[str, Any], str, Any], agent_id: str
) -> AsyncIterator[Harness]:
    name, opts, image, cleanup = driver_setup
    instances: list[Driver] = []

    def new_driver() -> Driver:
        driver = make_driver(name, **opts)
        instances.append(driver)
        return driver

    driver = new_driver()
    await driver.start()
    yield Harness(driver=driver, image=image, new_driver=new_driver)
    last = instances[-1]
    for observed in await last.list_managed():
        await last.remove_container(observed.id)
    for instance in instances:
        await instance.close()
    if cleanup is not None:
        await asyncio.to_thread(cleanup, agent_id)


class EventLog:
    """Collects a driver's events in the background; `wait_for` returns the first matching one."""

    def __init__(self, driver: Driver) -> None:
        self.events: list[ContainerEvent] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._pump(driver))

    async def _pump(self, driver: Driver) -> None:
        async for event in driver.events():
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def wait_for(self, action: str, container_id: str, timeout: float = 30) -> ContainerEvent:
        def match() -> ContainerEvent | None:
            return next((e for e in self.events if e.action == action and e.id == container_id), None)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(match), timeout)
        event = match()
        assert event is not None
        return event

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@pytest.fixture
async def events(harness: Harness) -> AsyncIterator[EventLog]:
    log = EventLog(harness.driver)
    await asyncio.sleep(0.3)  # the Docker stream connects in a thread
    yield log
    await log.close()


async def eventually(check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.1)


SLEEPER = "while :; do busybox sleep 1; done"


async def test_sandbox_and_container_start(harness: Harness) -> None:
    sandbox, spec = await harness.pod("web-1")
    cid = await harness.run(sandbox, spec, "app", SLEEPER)
    observed = {o.id: o for o in await harness.driver.list_managed()}
    assert observed[sandbox.id].is_infra and observed[sandbox.id].address == sandbox.address
    assert observed[cid].state == "running"
    assert (
        observed[cid].container == "app" and observed[cid].pod == "web-1" and observed[cid].restart_count == 0
    )


async def test_two_containers_of_a_pod_talk_over_the_pod_network(harness: Harness) -> None:
    sandbox, spec = await harness.pod("duo")
    server = (
        "busybox mkdir -p /tmp/www-$$ && echo hello-from-server > /tmp/www-$$/index.html && "
        "exec busybox httpd -f -p ${POD_IP:-127.0.0.1}:18080 -h /tmp/www-$$"
    )
    await harness.run(sandbox, spec, "server", server)
    client = await harness.run(sandbox, spec, "client", SLEEPER)

    async def fetch() -> bytes:
        r = await harness.driver.exec(
            client,
            ("busybox", "sh", "-c", "busybox wget -qO- http://${POD_IP:-127.0.0.1}:18080/"),
            timeout=10,
        )
        return r.output if r.exit_code == 0 else b""

    assert b"hello-from-server" in await eventually(fetch)


async def test_die_event_carries_the_exit_code(harness: Harness, events: EventLog) -> None:
    sandbox, spec = await harness.pod("crasher")
    cid = await harness.run(sandbox, spec, "app", "busybox sleep 0.2; exit 3")
    assert (await events.wait_for("start", cid)).labels[LABEL_CONTAINER] == "app"
    died = await events.wait_for("die", cid)
    assert died.exit_code == 3 and died.labels[LABEL_POD] == "crasher"
    observed = {o.id: o for o in await harness.driver.list_managed()}
    assert observed[cid].state == "exited" and observed[cid].exit_code == 3


async def test_var_references_in_command_args_and_env_are_expanded(harness: Harness, events: EventLog) -> None:
    """`$(VAR)` as the kubelet expands it: from the container's env; undefined kept; `$$` escapes."""
    sandbox, spec = await harness.pod("refs")
    container = Container(
        name="app", image=harness.image, command=("busybox", "echo", "--to=$(GREETING)"),
        args=("$(BOTH)", "$(NOPE)", "$$(GREETING)"),
        env=(EnvVar("GREETING", "hello"), EnvVar("BOTH", "$(GREETING)-world")),
    )
    cid = await harness.driver.start_container(ContainerSpec(sandbox=sandbox, spec=spec, container=container))
    await events.wait_for("die", cid)
    output = b"".join([c async for c in harness.driver.logs(cid, follow=False)])
    assert output == b"--to=hello hello-world $(NOPE) $(GREETING)\n"


async def test_stop_honours_sigterm_within_the_grace(harness: Harness, events: EventLog) -> None:
    sandbox, spec = await harness.pod("polite")
    cid = await harness.run(sandbox, spec, "app", "trap 'echo got-term; exit 0' TERM; " + SLEEPER)
    await asyncio.sleep(0.5)  # let the shell install its trap
    await harness.driver.stop_container(cid, grace_seconds=20)
    assert (await events.wait_for("die", cid)).exit_code == 0
    chunks = [c async for c in harness.driver.logs(cid, follow=False)]
    assert b"got-term" in b"".join(chunks)


async def test_stop_kills_after_the_grace(harness: Harness, events: EventLog) -> None:
    sandbox, spec = await harness.pod("stubborn")
    cid = await harness.run(sandbox, spec, "app", "trap '' TERM; " + SLEEPER)
    await asyncio.sleep(0.5)
    started = time.monotonic()
    await harness.driver.stop_container(cid, grace_seconds=1)
    assert time.monotonic() - started >= 0.9  # it waited out the grace before SIGKILL
    assert (await events.wait_for("die", cid)).exit_code == 137
    await harness.driver.stop_container(cid, grace_seconds=1)  # already stopped: not an error


async def test_list_managed_sees_exactly_what_was_created(harness: Harness, events: EventLog) -> None:
    created = set()
    sandboxes = []
    for name in ("a", "b"):
        sandbox, spec = await harness.pod(name)
        sandboxes.append(sandbox)
        created |= {sandbox.id, await harness.run(sandbox, spec, "app", SLEEPER)}
    assert {o.id for o in await harness.driver.list_managed()} == created
    infra = [o for o in await harness.driver.list_managed() if o.container == INFRA_CONTAINER]
    assert len({o.address for o in infra}) == 2
    await harness.driver.remove_sandbox(sandboxes[0].id)
    remaining = {o.id for o in await harness.driver.list_managed()}
    assert sandboxes[0].id not in remaining and len(remaining) == 2
    await events.wait_for("destroy", sandboxes[0].id)


async def test_exec_returns_exit_code_and_output_and_times_out(harness: Harness) -> None:
    sandbox, spec = await harness.pod("exec")
    cid = await harness.run(sandbox, spec, "app", SLEEPER, env=(EnvVar("GREETING", "hi"),))
    result = await harness.driver.exec(cid, ("busybox", "sh", "-c", "echo $GREETING; exit 7"), timeout=10)
    assert result.exit_code == 7 and result.output == b"hi\n"
    with pytest.raises(ExecTimeout):
        await harness.driver.exec(cid, ("busybox", "sleep", "30"), timeout=0.5)


async def test_exec_sessions_stream_stdio_and_a_terminal(harness: Harness) -> None:
    sandbox, spec = await harness.pod("shell")
    cid = await harness.run(sandbox, spec, "app", SLEEPER, env=(EnvVar("GREETING", "hi"),))

    session = await harness.driver.open_exec(cid, ("busybox", "cat"), stdin=True, tty=False)
    try:
        await session.write(b"echoed\n")
        await session.close_stdin()
        assert [item async for item in session.output()] == [(1, b"echoed\n")]
        assert await session.wait() == 0
    finally:
        await session.close()

    script = "echo $GREETING; echo oops >&2; exit 5"
    session = await harness.driver.open_exec(cid, ("busybox", "sh", "-c", script), stdin=False, tty=False)
    try:
        output = [item async for item in session.output()]
        assert sorted(output) == [(1, b"hi\n"), (2, b"oops\n")] and await session.wait() == 5
    finally:
        await session.close()

    session = await harness.driver.open_exec(cid, ("busybox", "sh", "-c", "read x; busybox stty size; exit 2"),
                                             stdin=True, tty=True)
    try:
        await session.resize(100, 30)
        await session.write(b"go\n")  # only now does the command ask for its size
        seen = b"".join([data async for _, data in session.output()])
        assert b"30 100" in seen and await session.wait() == 2
    finally:
        await session.close()


async def test_logs_tail_and_follow(harness: Harness) -> None:
    sandbox, spec = await harness.pod("talker")
    cid = await harness.run(
        sandbox, spec, "app", "echo one; echo two; busybox sleep 1; echo three; busybox sleep 1; echo four"
    )

    async def has_two() -> bool:
        return b"two" in b"".join([c async for c in harness.driver.logs(cid, follow=False)])

    assert await eventually(has_two)
    tail = b"".join([c async for c in harness.driver.logs(cid, follow=False, tail=1)])
    assert tail.endswith(b"\n") and tail.count(b"\n") == 1
    followed = b""
    async for chunk in harness.driver.logs(cid, follow=True):
        followed += chunk
    assert followed.splitlines() == [b"one", b"two", b"three", b"four"]


async def test_a_new_driver_instance_adopts_running_containers(harness: Harness) -> None:
    sandbox, spec = await harness.pod("survivor")
    cid = await harness.run(sandbox, spec, "app", SLEEPER)
    before = {o.id: o for o in await harness.driver.list_managed()}
    await harness.driver.close()  # the agent goes away; its containers keep running

    restarted = harness.new_driver()
    await restarted.start()
    after = {o.id: o for o in await restarted.list_managed()}
    assert set(after) == set(before) == {sandbox.id, cid}
    assert after[cid].state == "running" and after[sandbox.id].address == sandbox.address

    log = EventLog(restarted)
    await asyncio.sleep(0.3)
    await restarted.stop_container(cid, grace_seconds=5)
    assert (await log.wait_for("die", cid)).action == "die"
    await log.close()
    assert {o.id: o for o in await restarted.list_managed()}[cid].state == "exited"
