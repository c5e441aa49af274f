"""Three test hosts (network namespaces on a bridge, tests/integration/netns_harness.py) joining by DNS-SD and a
token: host0 starts the cluster on etcd (`--store`) and prints a token; host1 and host2 get only `--join TOKEN`
(no --store, no --server), find host0's `_meshd._tcp` advert by multicast across the bridge on their own
addresses, and become Ready nodes with their own InternalIPs. Before that, host2 with a wrong secret is refused
(exit 1) and registers nothing. etcd speaks only TLS with client certificates (`--client-cert-auth`): host0 is
given `--store https://... --store-ca/--store-cert/--store-key`, the joining hosts get etcd's CA and the client
certificate in the join answer. A capture on the bridge sees the adverts (multicast DNS), every TCP flow
between the hosts as TLS (the token crosses the LAN only inside TLS), and every host's flows to etcd as TLS."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.capture import Flow, capture, flows_between, flows_to, summarise
from tests.integration.netns_harness import TestLan, usable, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240),
              pytest.mark.skipif(bool(usable()), reason=usable() or "usable")]


class JoinLan(TestLan):
    """host0 with --store (and etcd's TLS files); the others with --join TOKEN once `join_token` is set: they
    learn the store and its TLS files from the cluster."""

    __test__ = False
    join_token = ""

    def agent_command(self, i: int) -> list[str]:
        args = super().agent_command(i)
        if i > 0 and self.join_token:
            at, store = args.index("--store"), self.store_args()
            assert args[at:at + len(store)] == store
            args[at:at + len(store)] = ["--join", self.join_token, "--join-timeout", "60"]
        return args


def etcd_flows_are_tls(lan: TestLan, flows: list[Flow], clients: set[str]) -> list[Flow]:
    """The flows to etcd (on the bridge's address): TLS every one, and some from each of `clients`."""
    assert lan.etcd is not None
    to_etcd = flows_to(flows, (lan.gateway, lan.etcd.members[0].client_port))
    kinds = summarise(to_etcd)
    assert kinds["tls"] and not kinds["plaintext"], kinds
    assert clients <= {f.client[0] for f in to_etcd if f.kind == "tls"}, kinds
    return to_etcd


def ready_nodes(lan: TestLan, i: int) -> dict[str, str]:
    return {name: node["ip"] for name, node in lan.nodes(i).items() if node["ready"] == "True"}


def test_three_hosts_join_by_dns_sd_and_a_token(tmp_path: Path) -> None:
    with JoinLan(tmp_path / "lan", hosts_wanted=3, agents=False, etcd_tls=True) as lan:
        lan.start_agent(0)
        found = wait_for(lambda: re.search(r"meshd agent --join ([a-z0-9]{6}\.[a-z0-9]{16})\n",
                                           lan.hosts[0].log.read_text()), timeout=30, what="the printed token",
                         explain=lan.explain)
        token = found.group(1)

        pcap = tmp_path / "join.pcap"
        with capture(lan.bridge, pcap, bpf="") as wire:
            lan.join_token = token[:7] + ("a" if token[7] != "a" else "b") + token[8:]  # a wrong secret first
            refused = lan.start_agent(2, wait=False)
            assert refused.proc is not None and refused.proc.wait(90) == 1, lan.explain()
            assert f'bootstrap token "{token[:6]}": wrong secret' in refused.log.read_text(), lan.explain()
            assert set(ready_nodes(lan, 0)) == {"host0"}

            lan.join_token = token
            for i in (1, 2):
                lan.start_agent(i, wait=False)
            for i in (1, 2):
                lan.wait_agent(i)
        flows = wire.flows()
        between = flows_between(flows, [h.address for h in lan.hosts])
        kinds = summarise(between)
        assert kinds["tls"] and not kinds["plaintext"], kinds  # the proofs and joins: host -> host0's API
        print("flows between the hosts:", *between, sep="\n  ")
        to_etcd = etcd_flows_are_tls(lan, flows, {h.address for h in lan.hosts})
        print(f"flows to etcd: {len(to_etcd)}, all TLS")
        assert b"_meshd" in pcap.read_bytes()  # the adverts, multicast on the bridge
        want = {h.name: h.address for h in lan.hosts}
        for host in lan.hosts:
            wait_for(lambda h=host: ready_nodes(lan, h.index) == want, timeout=60,
                     what=f"3 Ready nodes with their own addresses, seen from {host.name}", explain=lan.explain)
        for host in lan.hosts[1:]:
            log = host.log.read_text()
            found_at = re.findall(r"found node (host\d) of cluster \w+ at https://([\d.]+):", log)
            assert found_at and all(want[name] == address for name, address in found_at), log[-2000:]
            assert f"joined the cluster: store {lan.store}" in log, log[-2000:]
            assert (host.state_dir / "cluster" / "node.crt").exists()
            assert "store-ca.crt, store.crt, store.key" in log, log[-2000:]  # etcd's TLS files came with the join
