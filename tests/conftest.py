"""Shared fixtures: the Docker engine (tests marked `docker` skip with the reason when none answers), the offline
test images, a per-run agent id, and a cleanup that removes whatever this run labelled on the engine.

Every container a test creates through a driver carries `io.meshd.agent=<agent_id>`; agent ids of one run all
start with RUN_ID, so the session-end cleanup finds them and nothing of a teammate's.
Set MESHD_REQUIRE_DOCKER=1 (CI) to fail instead of skip when no engine answers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import itertools
import os
import secrets
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

RUN_ID = f"test-{secrets.token_hex(4)}"
_agent_ids = itertools.count(1)
_engine: dict[str, Any] = {}
# agents started by tests (in-process or as subprocesses, which inherit this) leave the machine's resolver and
# /etc/hosts alone; the tests of --host-names choose a mode explicitly, on a private copy of the file
os.environ.setdefault("MESHD_HOST_NAMES", "off")


def docker_engine() -> tuple[Any | None, str]:
    """(client, "") when a Docker engine answers, else (None, reason); asked once per session."""
    if "result" not in _engine:
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        try:
            import docker

            client = docker.from_env(version="auto", timeout=60)
            client.ping()
            _engine["result"] = (client, "")
        except Exception as exc:  # noqa: BLE001 - any failure means "no engine here"
            _engine["result"] = (None, f"no Docker engine answers at {host}: {exc}")
    return _engine["result"]


def require_docker() -> Any:
    """The docker client, or skip (fail with MESHD_REQUIRE_DOCKER=1) with the reason."""
    client, reason = docker_engine()
    if client is None:
        if os.environ.get("MESHD_REQUIRE_DOCKER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return client


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") is not None:
        require_docker()


# Blocking calls meshd makes on the loop today that another change owns: (file, function). Each is a known
# debt, named so that a new one fails.
KNOWN_BLOCKING: tuple[tuple[str, str], ...] = (
    ("meshd/agent.py", "__init__"),  # constructing resolves the state dir's path once, before anything is served
    ("meshd/sidecar_process.py", "__init__"),
    ("meshd/images/builders.py", "_ensure"),  # the session's test images, built once by a fixture (an async
    # fixture may ask for one: it runs in the loop), never by the agent
)


@contextlib.contextmanager
def _blockbuster() -> Iterator[None]:
    try:
        from blockbuster import blockbuster_ctx
    except ImportError:  # not installed: nothing is checked
        yield
        return
    with blockbuster_ctx(["meshd", "sidecar"]) as buster:
        for function in buster.functions.values():
            for filename, name in KNOWN_BLOCKING:
                function.can_block_in(filename, name)
        yield


@pytest.fixture(autouse=True)
def no_blocking_calls(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails a test whose meshd or sidecar code blocks the event loop (blockbuster); every test, unless it is
    marked `allow_blocking` (tests that drive blocking clients on purpose from the loop's thread)."""
    if request.node.get_closest_marker("allow_blocking") is not None:
        yield
        return
    with _blockbuster():
        yield


@pytest.fixture(autouse=True)
async def no_leaked_tasks(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Fails an async test that leaves tasks running: everything it started must be stopped and awaited."""
    if not inspect.iscoroutinefunction(getattr(request, "function", None)):
        yield
        return
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    left = []
    for _ in range(50):  # let cancelled tasks and done callbacks run to their end
        left = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
        if not left:
            return
        await asyncio.sleep(0.01)
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)
    pytest.fail(f"the test left {len(left)} tasks running: " + ", ".join(sorted(f"{t.get_name()} ({t.get_coro()!r})" for t in left)[:20]))


def sidecars_of(root: str) -> list[int]:
    """The node sidecars whose agent's state dir is under `root` (their MESHD_SIDECAR_OF names it)."""
    tag = b"MESHD_SIDECAR_OF=" + os.fsencode(root)
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                environ = Path(f"/proc/{entry}/environ").read_bytes()
            except OSError:  # gone, or not ours to read
                continue
            if any(var.startswith(tag) for var in environ.split(b"\0")):
                pids.append(int(entry))
    return pids


@pytest.fixture(autouse=True, scope="module")
def no_sidecar_outlives_its_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The same for a module's shared agents (under the run's base temp dir): a sidecar left by an agent a
    module killed would follow whatever agent takes its port next (another test's)."""
    root = str(tmp_path_factory.getbasetemp().resolve())
    before = set(sidecars_of(root))
    yield
    for pid in set(sidecars_of(root)) - before:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(autouse=True)
def no_sidecar_outlives_its_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """A node sidecar outlives its agent by design, so a test that kills an agent would leave its sidecar holding
    Service addresses that later tests get; whatever sidecar a test's tmp_path owns ends with the test."""
    root = Path(request.getfixturevalue("tmp_path")).resolve() if "tmp_path" in request.fixturenames else None
    yield
    for pid in sidecars_of(str(root)) if root is not None else ():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def docker_client() -> Any:
    return require_docker()


@pytest.fixture(scope="session")
def pause_image(docker_client: Any) -> str:
    from meshd.images import ensure_pause_image

    return ensure_pause_image(docker_client)


@pytest.fixture(scope="session")
def busybox_image(docker_client: Any) -> str:
    from meshd.images import ensure_busybox_image

    return ensure_busybox_image(docker_client)


@pytest.fixture(scope="session")
def python_image(docker_client: Any) -> str:
    from meshd.images import ensure_python_image

    return ensure_python_image(docker_client)


@pytest.fixture(scope="session")
def grpc_image(docker_client: Any) -> str:
    from meshd.images import ensure_grpc_image

    return ensure_grpc_image(docker_client)


@pytest.fixture(scope="session")
def servers_image(docker_client: Any) -> str:
    from meshd.images import ensure_servers_image

    return ensure_servers_image(docker_client)


@pytest.fixture
def agent_id() -> str:
    """A fresh agent identity for one test (labels keep its containers apart from every other test's)."""
    return f"{RUN_ID}-{next(_agent_ids)}"


@pytest.fixture
async def docker_driver(agent_id: str, docker_client: Any, pause_image: str) -> AsyncIterator[Any]:
    """A started DockerDriver for this test's agent id; its containers are removed afterwards."""
    from meshd.driver.docker import DockerDriver

    driver = DockerDriver(agent_id=agent_id, pause_image=pause_image)
    await driver.start()
    yield driver
    await driver.close()
    remove_labelled(docker_client, agent_id)


@pytest.fixture
async def process_driver(agent_id: str, tmp_path: Path) -> AsyncIterator[Any]:
    """A started ProcessDriver with its state in tmp_path; its processes are killed afterwards."""
    from meshd.driver.process import ProcessDriver

    driver = ProcessDriver(agent_id=agent_id, state_dir=tmp_path / "state")
    await driver.start()
    yield driver
    for observed in await driver.list_managed():
        await driver.remove_container(observed.id)
    await driver.close()


def remove_labelled(client: Any, agent_prefix: str) -> int:
    """Force-removes containers and volumes whose io.meshd.agent label starts with agent_prefix (the containers
    side by side: each removal mostly waits for the engine to stop a process)."""
    import docker.errors

    api = client.api

    def ours(labels: dict | None) -> bool:
        return (labels or {}).get("io.meshd.agent", "").startswith(agent_prefix)

    def remove_container(container_id: str) -> bool:
        try:
            api.remove_container(container_id, force=True)
            return True
        except docker.errors.APIError:
            return False  # already gone, or being removed

    found = [c["Id"] for c in api.containers(all=True, filters={"label": "io.meshd.managed=true"})
             if ours(c.get("Labels"))]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        removed = sum(pool.map(remove_container, found))
    for volume in api.volumes(filters={"label": "io.meshd.managed=true"}).get("Volumes") or []:
        if ours(volume.get("Labels")):
            try:
                api.remove_volume(volume["Name"], force=True)
            except docker.errors.APIError:
                pass
    return removed


@pytest.fixture
def remove_agent_containers(docker_client: Any) -> Callable[[str], int]:
    """remove_labelled bound to the engine: call it with an agent id (prefix) in a test's teardown."""
    return lambda agent_prefix: remove_labelled(docker_client, agent_prefix)


@pytest.fixture(scope="session", autouse=True)
def _cleanup_run_containers() -> Iterator[None]:
    """At the end of the session, removes every container and volume this test run labelled."""
    yield
    client = _engine.get("result", (None, ""))[0]
    if client is not None:
        remove_labelled(client, RUN_ID)
