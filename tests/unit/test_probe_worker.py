"""ProbeWorker and ContainerProber with scripted probe results and a fake clock (no sockets)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from meshd.metrics import REGISTRY
from meshd.model.objects import Container, ContainerPort, HTTPGetAction, Probe, TCPSocketAction
from meshd.probe.result import ProbeResult
from meshd.probe.tracker import Kind, Transition
from meshd.probe.worker import ContainerProber, ProbeWorker, probe_call


class FakeTime:
    """A clock that moves only when someone sleeps; every sleep yields to the loop once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class Script:
    """A probe call returning scripted outcomes ("s", "f", "e"), then repeating the last one forever."""

    def __init__(self, outcomes: str) -> None:
        self.outcomes = outcomes
        self.calls = 0

    async def __call__(self, timeout: float) -> ProbeResult:
        ch = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1
        outcome = {"s": "success", "f": "failure", "e": "error"}[ch]
        return ProbeResult(outcome, f"{outcome} #{self.calls}", 0.001)  # type: ignore[arg-type]


async def until(cond: Callable[[], bool], steps: int = 20000) -> None:
    for _ in range(steps):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


class FixedRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


def probe(**kw: float) -> Probe:
    return Probe(TCPSocketAction(80), **kw)  # type: ignore[arg-type]


async def test_first_probe_waits_initial_delay_plus_jitter_then_runs_every_period() -> None:
    t, script = FakeTime(), Script("s")
    worker = ProbeWorker(
        kind="liveness",
        probe=probe(initial_delay_seconds=5, period_seconds=2),
        call=script,
        on_transition=lambda k, tr: None,
        rng=FixedRandom(0.25),
        clock=t.clock,
        sleep=t.sleep,
    )
    worker.start()
    await until(lambda: script.calls >= 4)
    await worker.stop()
    assert t.sleeps[0] == pytest.approx(5 + 0.25 * 2)
    assert t.sleeps[1:4] == [2, 2, 2]


async def test_a_probe_longer_than_the_period_is_followed_at_once_then_the_grid_resumes() -> None:
    t = FakeTime()
    calls = 0

    async def slow_first(timeout: float) -> ProbeResult:
        nonlocal calls
        calls += 1
        if calls == 1:
            t.now += 2.5  # the first probe takes 2.5 periods
        return ProbeResult("success", "", 0.0)

    worker = ProbeWorker(
        kind="liveness",
        probe=probe(period_seconds=1),
        call=slow_first,
        on_transition=lambda k, tr: None,
        jitter=False,
        clock=t.clock,
        sleep=t.sleep,
    )
    worker.start()
    await until(lambda: calls >= 4)
    await worker.stop()
    assert t.sleeps[:3] == [0, 1, 1]


async def test_jitter_spreads_first_probes_over_the_period() -> None:
    rng = random.Random(7)
    firsts = []
    for _ in range(100):
        t = FakeTime()
        w = ProbeWorker(
            kind="readiness",
            probe=probe(period_seconds=1),
            call=Script("s"),
            on_transition=lambda k, tr: None,
            rng=rng,
            clock=t.clock,
            sleep=t.sleep,
        )
        w.start()
        await until(lambda t=t: bool(t.sleeps))  # type: ignore[misc]
        await w.stop()
        firsts.append(t.sleeps[0])
    assert all(0 <= f < 1 for f in firsts) and len({round(f, 2) for f in firsts}) > 30


async def test_transitions_only_on_change() -> None:
    t, script = FakeTime(), Script("sssffffs")
    seen: list[tuple[Kind, Transition]] = []
    worker = ProbeWorker(
        kind="readiness",
        probe=probe(failure_threshold=2),
        call=script,
        on_transition=lambda k, tr: seen.append((k, tr)),
        clock=t.clock,
        sleep=t.sleep,
    )
    worker.start()
    await until(lambda: script.calls >= 10)
    await worker.stop()
    assert [(k, tr.current, tr.result.message) for k, tr in seen] == [
        ("readiness", "success", "success #1"),
        ("readiness", "failure", "failure #5"),
        ("readiness", "success", "success #8"),
    ]


async def test_a_raising_call_is_an_error_and_a_hanging_call_times_out() -> None:
    async def boom(timeout: float) -> ProbeResult:
        raise RuntimeError("bug")

    async def hang(timeout: float) -> ProbeResult:
        await asyncio.sleep(3600)
        raise AssertionError

    w = ProbeWorker(kind="liveness", probe=probe(), call=boom, on_transition=lambda k, tr: None)
    result = await w.probe_once()
    assert (result.outcome, result.message) == ("error", "RuntimeError: bug")
    w = ProbeWorker(
        kind="liveness",
        probe=Probe(TCPSocketAction(80), timeout_seconds=0.01),
        call=hang,
        on_transition=lambda k, tr: None,
    )
    result = await w.probe_once()
    assert result.outcome == "failure" and "timed out" in result.message


async def test_probe_metrics_count_outcomes() -> None:
    def value(result: str) -> float:
        return REGISTRY.get_sample_value("meshd_probe_total", {"probe": "startup", "result": result}) or 0.0

    before = {r: value(r) for r in ("success", "failure", "error")}
    w = ProbeWorker(kind="startup", probe=probe(), call=Script("f"), on_transition=lambda k, tr: None)
    await w.probe_once()
    assert value("failure") == before["failure"] + 1 and value("success") == before["success"]
    assert REGISTRY.get_sample_value("meshd_probe_duration_seconds_count", {"probe": "startup"}) is not None
    assert REGISTRY.get_sample_value("meshd_readiness_transitions_total", {"to": "ready"}) is not None


def test_unknown_named_port_is_an_error_call() -> None:
    c = Container("app", "img", ports=(ContainerPort(8080, name="http"),))
    call = probe_call(Probe(HTTPGetAction("metrics")), container=c, host="127.0.0.1", exec_run=None)
    result = asyncio.run(call(1.0))
    assert result.outcome == "error" and "'metrics'" in result.message


# --- ContainerProber ------------------------------------------------------------------------------------


class Owner:
    def __init__(self) -> None:
        self.changes: list[tuple[bool, str]] = []
        self.restarts: list[str] = []

    def on_change(self, ready: bool, reason: str) -> None:
        self.changes.append((ready, reason))

    def on_restart(self, reason: str) -> None:
        self.restarts.append(reason)


def prober(container: Container, owner: Owner, t: FakeTime, calls: dict[Kind, Script]) -> ContainerProber:
    return ContainerProber(
        container,
        host="127.0.0.1",
        on_change=owner.on_change,
        on_restart=owner.on_restart,
        clock=t.clock,
        sleep=t.sleep,
        calls=dict(calls),
        rng=random.Random(1),
    )


def no_tasks_left() -> bool:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("probe ")] == []


async def test_no_probes_means_ready_once_running_and_unready_when_stopped() -> None:
    owner, t = Owner(), FakeTime()
    p = prober(Container("app", "img"), owner, t, {})
    p.start()
    assert p.ready and owner.changes == [(True, "container is running")]
    await p.stop(reason="container died (exit code 137)")
    assert not p.ready and owner.changes[-1] == (False, "container died (exit code 137)")


async def test_readiness_flips() -> None:
    owner, t = Owner(), FakeTime()
    script = Script("ssfffssss")
    p = prober(
        Container("app", "img", readiness_probe=probe(failure_threshold=2)), owner, t, {"readiness": script}
    )
    p.start()
    assert owner.changes == []
    await until(lambda: script.calls >= 9)
    await p.stop()
    assert owner.changes == [
        (True, "Readiness probe succeeded"),
        (False, "Readiness probe failed: failure #4"),
        (True, "Readiness probe succeeded"),
        (False, "container is not running"),
    ]
    assert no_tasks_left()


async def test_liveness_failure_restarts_once_and_stops_probing() -> None:
    owner, t = Owner(), FakeTime()
    live, ready = Script("ssff"), Script("s")
    c = Container("app", "img", liveness_probe=probe(failure_threshold=2), readiness_probe=probe())
    p = prober(c, owner, t, {"liveness": live, "readiness": ready})
    p.start()
    await until(lambda: bool(owner.restarts))
    for _ in range(100):
        await asyncio.sleep(0)
    assert owner.restarts == ["Liveness probe failed: failure #4"]
    assert live.calls == 4 and owner.changes[-1] == (False, "Liveness probe failed: failure #4")
    assert not p.ready
    await p.stop()
    assert no_tasks_left()


async def test_startup_holds_liveness_and_readiness_until_it_succeeds() -> None:
    owner, t = Owner(), FakeTime()
    start, live, ready = Script("ffs"), Script("s"), Script("s")
    c = Container(
        "app",
        "img",
        startup_probe=probe(failure_threshold=5),
        liveness_probe=probe(),
        readiness_probe=probe(),
    )
    p = prober(c, owner, t, {"startup": start, "liveness": live, "readiness": ready})
    p.start()
    await until(lambda: start.calls >= 2)
    assert live.calls == 0 and ready.calls == 0 and not p.ready
    await until(lambda: p.ready)
    assert start.calls == 3 and owner.changes == [(True, "Readiness probe succeeded")]
    await until(lambda: live.calls >= 5)
    assert start.calls == 3  # a started container is not probed for startup again
    await p.stop()
    assert no_tasks_left()


async def test_startup_failure_restarts_and_readiness_stays_off() -> None:
    owner, t = Owner(), FakeTime()
    start, ready = Script("f"), Script("s")
    c = Container("app", "img", startup_probe=probe(failure_threshold=3), readiness_probe=probe())
    p = prober(c, owner, t, {"startup": start, "readiness": ready})
    p.start()
    await until(lambda: bool(owner.restarts))
    assert owner.restarts == ["Startup probe failed: failure #3"]
    assert ready.calls == 0 and owner.changes == [] and not p.ready
    await p.stop()
    # the owner restarts the container and starts probing it afresh
    start.outcomes = "s"
    p.start()
    await until(lambda: p.ready)
    await p.stop()
    assert no_tasks_left()


async def test_reports_for_describe() -> None:
    owner, t = Owner(), FakeTime()
    c = Container("app", "img", liveness_probe=probe(), readiness_probe=probe(failure_threshold=1000))
    p = prober(c, owner, t, {"liveness": Script("s"), "readiness": Script("f")})
    p.start()
    await until(lambda: all(r.last is not None for r in p.reports()))
    reports = {r.kind: r for r in p.reports()}
    await p.stop()
    assert reports["readiness"].state == "unknown" and reports["liveness"].state == "success"
    assert reports["readiness"].last is not None and reports["readiness"].last.outcome == "failure"
