"""The machine's own node beside the test hosts: two network-namespace hosts (process driver) and an agent in
the machine's own namespace with the Docker driver, its API on the bridge's address, all on one Debian etcd;
kubectl through a namespace host's agent lists the three nodes Ready, each with its own InternalIP and runtime."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.netns_harness import TestLan, usable, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.skipif(bool(usable()), reason=usable() or "usable")]


def test_the_machines_own_node_on_docker_joins_the_namespace_hosts(
        tmp_path: Path, agent_id: str, remove_agent_containers: Callable[[str], int]) -> None:
    try:
        with TestLan(tmp_path / "lan", hosts_wanted=2) as lan:
            machine = lan.start_machine(agent_id)
            names = {"host0", "host1", "machine"}
            for i in (0, machine.index):
                wait_for(lambda i=i: (lambda n: set(n) == names and all(v["ready"] == "True" for v in n.values()))(
                    lan.nodes(i)), timeout=90, what=f"3 Ready nodes seen from {lan.hosts[i].name}",
                    explain=lan.explain)
            out = lan.kubectl(1, "get", "nodes", "--no-headers", "-o", "wide")
            rows = {line.split()[0]: line.split() for line in out.stdout.splitlines() if line.strip()}
            assert rows["machine"][5] == lan.gateway and rows["machine"][-1] == "docker", out.stdout
            for host in lan.hosts[:2]:
                assert rows[host.name][5] == host.address and rows[host.name][-1] == "process", out.stdout
            assert wait_for(lan.leader, timeout=60, what="one leader") in names
    finally:
        remove_agent_containers(agent_id)
