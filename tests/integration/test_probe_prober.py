"""ContainerProber end to end against a local HTTP server whose health flips."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from meshd.model.objects import Container, ContainerPort, ExecAction, HTTPGetAction, Probe, TCPSocketAction
from meshd.probe.exec import run_subprocess
from meshd.probe.worker import ContainerProber


class App:
    """/ready, /live, /started answer 200 or 500 as the flags say; hits are counted per path."""

    def __init__(self) -> None:
        self.flags = {"/ready": True, "/live": True, "/started": True}
        self.hits: dict[str, int] = {p: 0 for p in self.flags}
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        if request.path == "/slow":
            await asyncio.sleep(30)
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        return web.Response(status=200 if self.flags.get(request.path, False) else 500)


@pytest.fixture
async def app() -> AsyncIterator[App]:
    state = App()
    web_app = web.Application()
    web_app.router.add_get("/{tail:.*}", state.handle)
    runner = web.AppRunner(web_app, shutdown_timeout=0.1, handler_cancellation=True)  # no handler outlives it
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield state
    await runner.cleanup()


class Owner:
    def __init__(self) -> None:
        self.changes: list[tuple[bool, str]] = []
        self.restarts: list[str] = []
        self.event = asyncio.Event()

    def on_change(self, ready: bool, reason: str) -> None:
        self.changes.append((ready, reason))
        self.event.set()

    def on_restart(self, reason: str) -> None:
        self.restarts.append(reason)
        self.event.set()

    async def until(self, cond: Callable[[], bool]) -> None:
        async with asyncio.timeout(20):
            while not cond():
                self.event.clear()
                await self.event.wait()


FAST = {"period_seconds": 0.05, "timeout_seconds": 1.0}


def http_probe(path: str, port: int | str = "http", **kw: float) -> Probe:
    return Probe(HTTPGetAction(port=port, path=path), **{**FAST, **kw})  # type: ignore[arg-type]


def container(port: int, **probes: Probe) -> Container:
    return Container("app", "img", ports=(ContainerPort(port, name="http"),), **probes)  # type: ignore[arg-type]


def leaked() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("probe ")]


async def test_readiness_failure_takes_the_container_out_and_recovery_brings_it_back(app: App) -> None:
    owner = Owner()
    p = ContainerProber(
        container(app.port, readiness_probe=http_probe("/ready", failure_threshold=2)),
        host="127.0.0.1",
        on_change=owner.on_change,
        on_restart=owner.on_restart,
    )
    p.start()
    await owner.until(lambda: p.ready)
    app.flags["/ready"] = False
    await owner.until(lambda: not p.ready)
    assert owner.changes[-1] == (False, "Readiness probe failed: HTTP probe failed with statuscode: 500")
    app.flags["/ready"] = True
    await owner.until(lambda: p.ready)
    await p.stop(reason="container died")
    assert [c[0] for c in owner.changes] == [True, False, True, False] and owner.restarts == []
    assert owner.changes[-1] == (False, "container died") and leaked() == []


async def test_liveness_failures_restart(app: App) -> None:
    owner = Owner()
    c = container(
        app.port,
        liveness_probe=http_probe("/live", failure_threshold=3),
        readiness_probe=http_probe("/ready"),
    )
    p = ContainerProber(c, host="127.0.0.1", on_change=owner.on_change, on_restart=owner.on_restart)
    p.start()
    await owner.until(lambda: p.ready)
    app.flags["/live"] = False
    await owner.until(lambda: bool(owner.restarts))
    assert owner.restarts == ["Liveness probe failed: HTTP probe failed with statuscode: 500"]
    assert not p.ready and owner.changes[-1][0] is False
    await p.stop()
    assert leaked() == []


async def test_failing_startup_probe_restarts_and_readiness_stays_off(app: App) -> None:
    owner = Owner()
    app.flags["/started"] = False
    c = container(
        app.port,
        startup_probe=http_probe("/started", failure_threshold=4),
        readiness_probe=http_probe("/ready"),
        liveness_probe=http_probe("/live"),
    )
    p = ContainerProber(c, host="127.0.0.1", on_change=owner.on_change, on_restart=owner.on_restart)
    p.start()
    await owner.until(lambda: bool(owner.restarts))
    assert owner.restarts == ["Startup probe failed: HTTP probe failed with statuscode: 500"]
    assert (
        owner.changes == []
        and app.hits["/ready"] == 0
        and app.hits["/live"] == 0
        and app.hits["/started"] == 4
    )
    await p.stop()
    # the restarted container starts properly
    app.flags["/started"] = True
    p.start()
    await owner.until(lambda: p.ready)
    await p.stop()
    assert leaked() == []


async def test_tcp_probe_on_a_closed_port_never_gets_ready(app: App) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    closed = s.getsockname()[1]
    s.close()
    owner = Owner()
    c = Container("app", "img", readiness_probe=Probe(TCPSocketAction(closed), failure_threshold=1, **FAST))  # type: ignore[arg-type]
    p = ContainerProber(c, host="127.0.0.1", on_change=owner.on_change)
    p.start()
    async with asyncio.timeout(20):
        while p.health.reason == "Readiness probe has not succeeded yet":
            await asyncio.sleep(0.02)
    assert (
        p.health.reason == f"Readiness probe failed: dial tcp 127.0.0.1:{closed}: connect: connection refused"
    )
    assert owner.changes == []
    await p.stop()


async def test_exec_readiness_with_real_processes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    flag = tmp_path / "ready"
    owner = Owner()
    c = Container(
        "app",
        "img",
        readiness_probe=Probe(ExecAction(("test", "-f", str(flag))), failure_threshold=1, **FAST),
    )  # type: ignore[arg-type]
    p = ContainerProber(c, host="127.0.0.1", exec_run=run_subprocess, on_change=owner.on_change)
    p.start()
    flag.write_text("")
    await owner.until(lambda: p.ready)
    flag.unlink()
    await owner.until(lambda: not p.ready)
    assert owner.changes[-1][1].startswith("Readiness probe failed: command ['test', '-f'")
    await p.stop()


async def test_a_slow_probe_does_not_delay_others(app: App) -> None:
    slow_owner, fast_owner = Owner(), Owner()
    slow = ContainerProber(
        container(app.port, readiness_probe=http_probe("/slow", timeout_seconds=20)),
        host="127.0.0.1",
        on_change=slow_owner.on_change,
        name="slow",
    )
    fast = ContainerProber(
        container(app.port, readiness_probe=http_probe("/ready")),
        host="127.0.0.1",
        on_change=fast_owner.on_change,
        name="fast",
    )
    slow.start()
    fast.start()
    await fast_owner.until(lambda: fast.ready)
    before = app.hits["/ready"]
    async with asyncio.timeout(20):
        while app.hits["/ready"] < before + 5:
            await asyncio.sleep(0.02)
    assert [r.last for r in slow.reports()] == [None]  # the slow probe is still waiting for its answer
    await asyncio.gather(slow.stop(), fast.stop())
    assert leaked() == []


async def test_port_map_sends_probes_to_the_published_port(app: App) -> None:
    owner = Owner()
    c = container(8080, readiness_probe=http_probe("/ready"))  # containerPort 8080, published at app.port
    p = ContainerProber(c, host="127.0.0.1", port_map={8080: app.port}, on_change=owner.on_change)
    p.start()
    await owner.until(lambda: p.ready)
    await p.stop()
    assert app.hits["/ready"] >= 1
