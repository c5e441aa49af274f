"""A test LAN (tests/integration/netns_harness.py) whose etcd has three members, each in a network namespace of
its own on the bridge (peers and clients on that namespace's address), so that one member can be cut off from
the other two while agents still reach it: etcd's minority, as a member behind a broken switch port between
racks. `isolate(k)` blackholes, inside member k's namespace, the routes to the other members (raft's messages
neither leave nor are answered); `block(i, addresses)` does the same on agent host i; `unblock` undoes both."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from tests.integration.etcd_harness import EtcdCluster, EtcdMember
from tests.integration.netns_harness import TestHost, TestLan
from tests.integration.netns_support import sh, wait_for

MEMBER_SLOT = 20  # member k's namespace is the LAN's host slot 20+k (address .30+k)


@dataclass
class SplitEtcdLan(TestLan):
    """`with SplitEtcdLan(tmp_path, hosts_wanted=2) as lan:` agents in hosts 0.., etcd members in namespaces of
    their own; `--store` lists the members in `order` (indexes into etcd.members) for every agent unless
    `orders` gives host i its own."""

    orders: dict[int, tuple[int, ...]] = field(default_factory=dict)
    member_hosts: list[TestHost] = field(default_factory=list)

    def _etcd(self) -> None:
        members = []
        for k in range(3):
            host = self._host(MEMBER_SLOT + k)
            host.name = f"etcd{k}"
            self.member_hosts.append(host)
            members.append(EtcdMember(f"m{k}", self.directory / "etcd" / f"m{k}", (host.address,),
                                      peer_host=host.address, inside=host.inside))
        self.etcd = EtcdCluster(self.directory / "etcd", members=members).start()

    def store_for(self, i: int) -> str:
        assert self.etcd is not None
        order = self.orders.get(i, tuple(range(len(self.etcd.members))))
        return "etcd://" + ",".join(self.etcd.members[k].endpoint for k in order)

    def agent_command(self, i: int) -> list[str]:
        command = super().agent_command(i)
        command[command.index("--store") + 1] = self.store_for(i)
        return command

    def check_paths(self, timeout: float = 10.0) -> None:
        assert self.etcd is not None
        for host in self.hosts:
            for member in self.etcd.members:
                wait_for(lambda h=host, m=member: self.run(h.index, "curl", "-sf", "-m", "2",
                                                           f"http://{m.endpoint}/health").returncode == 0,
                         timeout=timeout, what=f"{host.netns} reaching etcd member {member.name} at {member.endpoint}")

    # ---- faults ----

    def isolate(self, k: int) -> None:
        """Member k cut off from the other members (agents still reach it)."""
        self._routes("add", self.member_hosts[k].inside,
                     [h.address for j, h in enumerate(self.member_hosts) if j != k])

    def rejoin(self, k: int) -> None:
        self._routes("del", self.member_hosts[k].inside,
                     [h.address for j, h in enumerate(self.member_hosts) if j != k])

    def block(self, i: int, members: list[int]) -> None:
        """Agent host i no longer reaches these members (it still reaches the others)."""
        self._routes("add", self.hosts[i].inside, [self.member_hosts[k].address for k in members])

    def unblock(self, i: int, members: list[int]) -> None:
        self._routes("del", self.hosts[i].inside, [self.member_hosts[k].address for k in members])

    @staticmethod
    def _routes(verb: str, inside: tuple[str, ...], addresses: list[str]) -> None:
        for address in addresses:
            sh(*inside, "ip", "route", verb, "blackhole", f"{address}/32", check=verb == "add")

    # ---- looking inside ----

    def status(self, k: int) -> dict[str, Any]:
        """Member k's /v3/maintenance/status ({} when it does not answer)."""
        assert self.etcd is not None
        request = urllib.request.Request(f"http://{self.etcd.members[k].endpoint}/v3/maintenance/status", data=b"{}",
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=3) as response:
                return dict(json.loads(response.read()))
        except (OSError, ValueError):
            return {}

    def has_leader(self, k: int) -> bool:
        return bool(self.status(k).get("leader"))

    def explain(self, tail: int = 2500) -> str:
        parts = [super().explain(tail)]
        if self.etcd is not None:
            for member in self.etcd.members[1:]:
                log = member.directory / "etcd.log"
                if log.exists():
                    parts.append(f"\n---- etcd {log} ----\n" + log.read_text(errors="replace")[-tail // 2:])
        return "".join(parts)

    def member_pids(self) -> list[int]:
        assert self.etcd is not None
        return [m.proc.pid for m in self.etcd.members if m.proc is not None and m.proc.poll() is None]


__all__ = ["SplitEtcdLan"]
