"""`meshd agent` and `meshd up` turn their flags into AgentOptions and hand over to meshd.agent."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from click.testing import CliRunner

import meshd.agent
from meshd.cli.main import cli


@dataclass
class FakeOptions:
    api: str = "127.0.0.1:7700"
    dns: str = "127.0.0.1:8600"
    driver: str = "docker"
    mdns: str = "all"
    state_dir: str | None = None
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    node_cpus: str | None = None
    node_memory: str | None = None
    verbose: bool = False
    sidecar: bool = True
    host_names: str | None = None
    cron_minute: float = 60.0


@pytest.fixture
def calls(monkeypatch):
    seen: list[tuple[str, object, object]] = []
    monkeypatch.setattr(meshd.agent, "AgentOptions", FakeOptions)
    monkeypatch.setattr(meshd.agent, "run_agent", lambda options: seen.append(("agent", options, None)) or 0)
    monkeypatch.setattr(
        meshd.agent, "run_up", lambda options, files: seen.append(("up", options, files)) or 3
    )
    monkeypatch.delenv("MESHD_API", raising=False)
    return seen


def test_agent_flags_become_options(calls):
    args = [
        "agent",
        "--api",
        "http://127.0.0.1:7799",
        "--driver",
        "process",
        "--mdns",
        "off",
        "--backoff-initial",
        "0.1",
        "--backoff-max",
        "1",
        "--node-cpus",
        "2",
        "--node-memory",
        "1Gi",
        "--no-sidecar",
        "-v",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert calls == [
        (
            "agent",
            FakeOptions(
                api="127.0.0.1:7799",
                driver="process",
                mdns="off",
                backoff_initial=0.1,
                backoff_max=1.0,
                node_cpus="2",
                node_memory="1Gi",
                verbose=True,
                sidecar=False,
            ),
            None,
        )
    ]


def test_agent_defaults_are_the_agents_own(calls):
    assert CliRunner().invoke(cli, ["agent"]).exit_code == 0
    assert calls == [("agent", FakeOptions(), None)]


def test_agent_listens_where_meshd_api_points(calls, monkeypatch):
    monkeypatch.setenv("MESHD_API", "http://127.0.0.1:7711")
    assert CliRunner().invoke(cli, ["agent"]).exit_code == 0
    assert calls[0][1].api == "127.0.0.1:7711"


def test_up_passes_files_and_exit_status(calls, tmp_path):
    (tmp_path / "web.yaml").write_text("kind: Pod\n")
    result = CliRunner().invoke(cli, ["up", "-f", str(tmp_path), "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 3
    assert calls[0][0] == "up" and calls[0][2] == [str(tmp_path)]
    assert calls[0][1].state_dir == str(tmp_path / "state")


@pytest.mark.parametrize("command", ["agent", "up"])
def test_host_names_is_a_flag_of_agent_and_up(calls, command, tmp_path):
    (tmp_path / "web.yaml").write_text("kind: Pod\n")
    files = ["-f", str(tmp_path)] if command == "up" else []
    assert CliRunner().invoke(cli, [command, *files, "--host-names", "hosts"]).exit_code in (0, 3)
    assert calls[0][1].host_names == "hosts"
    result = CliRunner().invoke(cli, [command, *files, "--host-names", "sometimes"])
    assert result.exit_code == 2 and "'sometimes' is not one of 'auto', 'resolved', 'hosts', 'off'" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["up", "-f", "/nonexistent/web.yaml"], 'error: the path "/nonexistent/web.yaml" does not exist'),
        (
            ["agent", "--backoff-initial", "5", "--backoff-max", "1"],
            "error: --backoff-initial must not exceed --backoff-max",
        ),
        (["agent", "--node-memory", "lots"], "error: --node-memory lots: "),
    ],
)
def test_bad_agent_flags_fail_before_starting(calls, args, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert result.output.startswith(message)
    assert calls == []



def test_an_agent_without_the_gateway_gets_a_resolver_address_of_its_own():
    """Stable per agent id (its pods keep it across restarts), apart between agents, in the Service range,
    never a .0/.255 some tools dislike."""
    import ipaddress

    first, again, other = (meshd.agent.agent_resolver_address(i) for i in ("agent-a", "agent-a", "agent-b"))
    assert first == again and first != other
    for address in (first, other):
        assert ipaddress.IPv4Address(address) in ipaddress.IPv4Network(meshd.agent.DOCKER_SERVICE_POOL)
        assert address.endswith(".254")


def test_cron_minute_makes_a_fast_cronjob_clock_and_lasts_some_time(calls):
    assert CliRunner().invoke(cli, ["agent", "--cron-minute", "4"]).exit_code == 0
    assert calls[0][1].cron_minute == 4.0
    result = CliRunner().invoke(cli, ["agent", "--cron-minute", "0"])
    assert result.exit_code == 2 and "--cron-minute" in result.output
