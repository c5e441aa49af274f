"""Pure parts of the Docker driver: network plan, event and inspect translation, argv mapping, cgroup reading."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from meshd.driver.base import ContainerEvent, Usage
from meshd.driver.docker import (
    DockerDriver,
    catch_up,
    container_state,
    event_from_docker,
    kube_command,
    observed_from_inspect,
    parse_docker_time,
    pod_nameservers,
    pod_network_plan,
    read_cgroup_v1_usage,
    volume_name,
)


def test_pod_network_plan_puts_gateway_first_and_pods_in_the_lower_half() -> None:
    assert pod_network_plan("10.213.0.0/16") == ("10.213.0.1", "10.213.0.0/17")
    assert pod_network_plan("172.30.0.0/24") == ("172.30.0.1", "172.30.0.0/25")


@pytest.mark.parametrize(
    "docker_state, state",
    [("created", "created"), ("running", "running"), ("paused", "running"), ("restarting", "running"),
     ("exited", "exited"), ("dead", "exited"), ("removing", "exited")],
)  # fmt: skip
def test_container_state(docker_state: str, state: str) -> None:
    assert container_state(docker_state) == state


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2024-01-02T03:04:05.123456789Z", 1704164645.123456789),
        ("2024-01-02T03:04:05Z", 1704164645.0),
        ("2024-01-02T04:04:05.5+01:00", 1704164645.5),
        ("0001-01-01T00:00:00Z", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_docker_time(text: str | None, expected: float | None) -> None:
    got = parse_docker_time(text)
    assert got == pytest.approx(expected) if expected is not None else got is None


def test_die_event_keeps_labels_and_exit_code() -> None:
    raw = {
        "Type": "container", "Action": "die", "id": "abc", "timeNano": 1_700_000_000_250_000_000,
        "Actor": {"ID": "abc", "Attributes": {"exitCode": "137", "image": "x", "name": "n",
                                               "io.meshd.pod": "web-1"}},
    }  # fmt: skip
    event = event_from_docker(raw)
    assert event == ContainerEvent(
        action="die",
        id="abc",
        labels={"io.meshd.pod": "web-1"},
        exit_code=137,
        time=event.time if event else 0,
    )
    assert event.time == pytest.approx(1_700_000_000.25)


@pytest.mark.parametrize(
    "raw",
    [{"Type": "container", "Action": "exec_start: sh", "id": "a"}, {"Type": "network", "Action": "connect"},
     {"Type": "container", "Action": "create", "id": "a"}],
)  # fmt: skip
def test_other_events_are_ignored(raw: dict) -> None:
    assert event_from_docker(raw) is None


def test_inspect_reports_oom_and_exit_code_and_address() -> None:
    attrs = {
        "Id": "c1",
        "Config": {"Labels": {"io.meshd.container": "POD"}, "Image": "meshd/pause:1"},
        "State": {"Status": "exited", "ExitCode": 137, "OOMKilled": True,
                  "StartedAt": "2024-01-02T03:04:05Z", "FinishedAt": "2024-01-02T03:04:06Z"},
        "NetworkSettings": {"Networks": {"meshd0": {"IPAddress": "10.213.0.7"}}},
    }  # fmt: skip
    observed = observed_from_inspect(attrs, "meshd0")
    assert (observed.state, observed.exit_code, observed.oom_killed, observed.address) == (
        "exited",
        137,
        True,
        "10.213.0.7",
    )
    assert observed.finished_at == observed.started_at + 1 and observed.is_infra


def test_running_container_has_no_exit_code() -> None:
    attrs = {"Id": "c2", "Config": {}, "State": {"Status": "running", "ExitCode": 0}, "NetworkSettings": {}}
    observed = observed_from_inspect(attrs, "meshd0")
    assert observed.exit_code is None and observed.finished_at is None and observed.address is None


@pytest.mark.parametrize(
    "command, args, expected",
    [((), (), (None, None)), (("sh", "-c"), ("echo",), (["sh", "-c"], ["echo"])),
     (("app",), (), (["app"], None)), ((), ("--flag",), (None, ["--flag"]))],
)  # fmt: skip
def test_kube_command_maps_command_to_entrypoint_and_args_to_cmd(
    command: tuple, args: tuple, expected: tuple
) -> None:
    assert kube_command(command, args) == expected


def test_volume_names_are_per_sandbox() -> None:
    assert volume_name("0123456789abcdef", "data") == "meshd_0123456789ab_data"


def test_cgroup_v1_usage_is_working_set(tmp_path: Path) -> None:
    cpu = tmp_path / "cpuacct" / "docker" / "c1"
    mem = tmp_path / "memory" / "docker" / "c1"
    cpu.mkdir(parents=True)
    mem.mkdir(parents=True)
    (cpu / "cpuacct.usage").write_text("2500000000\n")
    (mem / "memory.usage_in_bytes").write_text("1000000\n")
    (mem / "memory.stat").write_text("cache 5\ntotal_inactive_file 250000\n")
    assert read_cgroup_v1_usage(tmp_path, "docker", "c1") == Usage(cpu_seconds=2.5, memory_bytes=750000)
    assert read_cgroup_v1_usage(tmp_path, "docker", "missing") is None


class FakeStream:
    def __init__(self, events: list[dict], *, then: str) -> None:
        self.events, self.then, self.closed = events, then, threading.Event()

    def __iter__(self):  # type: ignore[no-untyped-def]
        yield from self.events
        if self.then == "fail":
            raise ConnectionError("engine went away")
        self.closed.wait(10)

    def close(self) -> None:
        self.closed.set()


class FakeClient:
    def __init__(self, stream: FakeStream, calls: list[dict], listing: list[dict] | None = None) -> None:
        self.stream, self.calls, self.listing = stream, calls, listing or []
        self.api = self

    def containers(self, **kwargs: object) -> list[dict]:
        return self.listing

    def events(self, **kwargs: object) -> FakeStream:
        self.calls.append(kwargs)
        return self.stream

    def close(self) -> None:
        pass


def raw_event(action: str, cid: str, nano: int) -> dict:
    return {"Type": "container", "Action": action, "id": cid, "timeNano": nano, "Actor": {"Attributes": {}}}


async def test_events_reconnect_and_replay_without_duplicates(monkeypatch: pytest.MonkeyPatch) -> None:
    died = raw_event("die", "a", 1_700_000_000_000_000_001)
    started = raw_event("start", "b", 1_700_000_000_000_000_002)
    streams = [FakeStream([died], then="fail"), FakeStream([died, started], then="block")]
    calls: list[dict] = []
    driver = DockerDriver(agent_id="unit")
    monkeypatch.setattr(driver, "_make_client", lambda **_: FakeClient(streams.pop(0), calls, listing=[]))
    received = []
    events = driver.events()
    async with asyncio.timeout(10):
        while len(received) < 2:
            received.append(await anext(events))
    await events.aclose()
    assert [(e.action, e.id) for e in received] == [("die", "a"), ("start", "b")]
    assert calls[1]["since"] == "1700000000.000000001"  # replays from the last event seen
    assert calls[0]["filters"]["label"] == ["io.meshd.managed=true", "io.meshd.agent=unit"]
    assert driver.event_stream_restarts == 1
    await driver.close()


def summary(cid: str, state: str, status: str = "") -> dict:
    return {"Id": cid, "State": state, "Status": status, "Labels": {"io.meshd.pod": cid}}


def test_catch_up_reports_what_happened_while_the_stream_was_down() -> None:
    known = {
        "gone": {"io.meshd.pod": "gone"},
        "died": {"io.meshd.pod": "died"},
        "alive": {"io.meshd.pod": "alive"},
    }
    listing = [summary("died", "exited", "Exited (3) 2 seconds ago"), summary("alive", "running", "Up 1 minute"),
               summary("new", "running", "Up 1 second")]  # fmt: skip
    events, running = catch_up(known, listing, now=5.0)
    assert [(e.action, e.id, e.exit_code) for e in events] == [
        ("die", "gone", None), ("destroy", "gone", None), ("die", "died", 3), ("start", "new", None)
    ]  # fmt: skip
    assert set(running) == {"alive", "new"}
    assert catch_up(running, listing, now=6.0)[0] == []


async def test_a_reconnect_reports_containers_that_vanished(monkeypatch: pytest.MonkeyPatch) -> None:
    started = raw_event("start", "a", 1_700_000_000_000_000_001)
    clients = [
        FakeClient(FakeStream([started], then="fail"), [], listing=[]),
        FakeClient(FakeStream([], then="block"), [], listing=[]),  # the engine came back without "a"
    ]
    driver = DockerDriver(agent_id="unit")
    monkeypatch.setattr(driver, "_make_client", lambda **_: clients.pop(0))
    events = driver.events()
    received = []
    async with asyncio.timeout(10):
        while len(received) < 3:
            received.append(await anext(events))
    await events.aclose()
    assert [(e.action, e.id) for e in received] == [("start", "a"), ("die", "a"), ("destroy", "a")]
    await driver.close()


@pytest.mark.parametrize(("resolv_conf", "servers"), [
    ("nameserver 10.255.255.53\n", ["10.213.0.1", "10.255.255.53"]),
    ("# stub\nnameserver 127.0.0.53\noptions edns0\n", ["10.213.0.1"]),  # loopback: unreachable from a pod
    ("nameserver 127.0.0.53\n\nnameserver 192.168.1.1\nnameserver 192.168.1.1\n", ["10.213.0.1", "192.168.1.1"]),
    ("nameserver 1.1.1.1\nnameserver 8.8.8.8\nnameserver 9.9.9.9\n", ["10.213.0.1", "1.1.1.1", "8.8.8.8"]),
    ("nameserver fe80::1%eth0\nnameserver ::1\nnameserver bogus\nsearch lan\n", ["10.213.0.1", "fe80::1"]),
    ("nameserver 10.213.0.1\n", ["10.213.0.1"]),
    ("", ["10.213.0.1"]),
])
def test_pods_ask_the_agent_first_then_the_hosts_upstream_servers(resolv_conf, servers):
    assert pod_nameservers("10.213.0.1", resolv_conf) == servers
