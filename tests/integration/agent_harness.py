"""An in-process agent on free ports for integration tests, with helpers to wait for what a user would see."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meshd.agent import Agent, AgentOptions


# Ports a test hands to a process it starts. Not the kernel's ephemeral range (32768-60999 here): a port probed
# free there can become the source port of any outgoing connection (an agent's etcd client, kubectl) before the
# process binds it, and CI saw an agent fail to start with "Address already in use". Below 30000, where
# NodePorts begin; never the same port twice in one test session, so two processes started together cannot get one.
# Under pytest-xdist each worker takes its own share of the range.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
_WORKER = int((os.environ.get("PYTEST_XDIST_WORKER") or "gw0").removeprefix("gw") or 0)
TEST_PORTS = range(20000, 30000)[_WORKER::_WORKERS]
_handed_out: set[int] = set()


def free_port(*, udp: bool = False) -> int:
    """A TCP port free on 127.0.0.1 and handed out once; with udp=True, free for UDP too (what a DNS server binds)."""
    start = random.randrange(len(TEST_PORTS))
    for offset in range(len(TEST_PORTS)):
        port = TEST_PORTS[(start + offset) % len(TEST_PORTS)]
        if port not in _handed_out and _bindable(port, udp=udp):
            _handed_out.add(port)
            return port
    raise OSError(f"no port in {TEST_PORTS} free for {'UDP and ' if udp else ''}TCP")


def _bindable(port: int, *, udp: bool) -> bool:
    kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp else (socket.SOCK_STREAM,)
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def deployment_yaml(name: str, *, image: str, command: str, replicas: int = 1, container: str = "main",
                    grace: int = 2, rolling: bool = False, env: str = "", readiness: str = "") -> str:
    """A Deployment manifest: `replicas` pods of one container `command` (a YAML list) serving port 8080 named
    http; `rolling`: surge one, none unavailable; `env`, `readiness`: the container's flow-style env list and
    readinessProbe HTTP GET path (none when empty)."""
    strategy = "\n          strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}" if rolling else ""
    env_line = f"\n                env: {env}" if env else ""
    probe = (f"\n                readinessProbe: {{httpGet: {{path: {readiness}, port: http}}, periodSeconds: 0.2, failureThreshold: 1}}"
             if readiness else "")
    return textwrap.dedent(f"""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: {name}}}
        spec:
          replicas: {replicas}
          selector: {{matchLabels: {{app: {name}}}}}{strategy}
          template:
            metadata: {{labels: {{app: {name}}}}}
            spec:
              terminationGracePeriodSeconds: {grace}
              containers:
              - name: {container}
                image: {image}
                imagePullPolicy: IfNotPresent{env_line}
                command: {command}
                ports: [{{containerPort: 8080, name: http}}]{probe}
        """)  # fmt: skip


def service_yaml(name: str) -> str:
    """The next document ("---" first): a Service `name` for the pods labelled app=`name`, port 80 to their
    port named http (what deployment_yaml makes)."""
    return textwrap.dedent(f"""\
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}}}
        spec:
          selector: {{app: {name}}}
          ports: [{{name: http, port: 80, targetPort: http}}]
        """)


def agent_options(tmp_path: Path, agent_id: str, **overrides: Any) -> AgentOptions:
    options = AgentOptions(
        api=f"127.0.0.1:{free_port()}",
        dns=f"127.0.0.1:{free_port(udp=True)}",
        state_dir=str(tmp_path / "state"),
        mdns="off",
        sidecar=False,
        backoff_initial=1.0,
        backoff_max=4.0,
        agent_id=agent_id,
    )
    for key, value in overrides.items():
        setattr(options, key, value)
    return options


def api_headers(agent: Agent, content_type: str = "application/yaml") -> dict[str, str]:
    """What a client of the agent's API sends: the bearer token, and a content type its writes need."""
    return {"Authorization": f"Bearer {agent.token}", "Content-Type": content_type}


def state_headers(state_dir: Path, content_type: str = "application/yaml") -> dict[str, str]:
    """api_headers for an agent in another process: its token from its state dir."""
    return {"Authorization": f"Bearer {(state_dir / 'token').read_text().strip()}", "Content-Type": content_type}


def cli_env(agent: Agent) -> dict[str, str]:
    """The environment a `meshd` CLI process needs to reach this agent over TCP."""
    return {"MESHD_API": f"http://{agent.options.api}", "MESHD_TOKEN": agent.token}


async def started_agent(options: AgentOptions) -> Agent:
    agent = Agent(options)
    await agent.start()
    return agent


async def eventually(check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Polls `check` until it returns something truthy; fails with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")


def pods(agent: Agent, prefix: str = "") -> list:
    return [w for (_, name), w in sorted(agent.controller.pods.items()) if name.startswith(prefix)]


def ready_pods(agent: Agent, prefix: str = "") -> list:
    return [w for w in pods(agent, prefix) if w.ready and not w.terminating]
