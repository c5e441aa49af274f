"""Three test hosts on one machine (network namespaces on a bridge, tests/integration/netns_harness.py), each
running its own `meshd agent --store https://BRIDGE:PORT` (etcd over TLS with client certificates; process
driver, its sidecar, mDNS on its own address),
driven with the real kubectl from the machine: the three nodes are Ready with their own InternalIPs and one
leads; a host cut off (its veth down) turns NotReady as the others see it while it reports the store unreachable
and keeps running, and comes back Ready with no duplicate Node; killing the leader's host moves leadership and
leaves the survivors Ready and their processes untouched, and the host restarted joins again.

One LAN for the module (building it takes a few seconds); every test starts by waiting for all three Ready and
leaves them so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.netns_harness import TestLan, usable, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(usable()), reason=usable() or "usable")]

NAMES = {"host0", "host1", "host2"}


@pytest.fixture(scope="module")
def lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestLan]:
    with TestLan(tmp_path_factory.mktemp("lan"), hosts_wanted=3, sidecar=True, etcd_tls=True) as built:
        yield built


def all_ready(lan: TestLan, i: int, names: set[str] = NAMES) -> dict[str, dict[str, str]] | None:
    nodes = lan.nodes(i)
    return nodes if set(nodes) == names and all(n["ready"] == "True" for n in nodes.values()) else None


def settled(lan: TestLan) -> str:
    """Every host's agent answers, all three nodes Ready as each sees them, one leader: its name."""
    for host in lan.hosts:
        wait_for(lambda h=host: all_ready(lan, h.index), timeout=60, what=f"3 Ready nodes seen from {host.name}",
                 explain=lan.explain)
    return str(wait_for(lan.leader, timeout=60, what="one leader", explain=lan.explain))


def lease_holder(lan: TestLan, i: int) -> tuple[str, int]:
    out = lan.kubectl(i, "get", "lease", "-n", "kube-system", "meshd-controller", "-o", "json")
    if out.returncode != 0:
        return "", -1
    spec = json.loads(out.stdout)["spec"]
    return spec.get("holderIdentity", ""), int(spec.get("leaseTransitions") or 0)


def test_three_hosts_join_one_etcd_and_kubectl_lists_three_ready_nodes(lan: TestLan) -> None:
    leader = settled(lan)
    out = lan.kubectl(0, "get", "nodes", "--no-headers", "-o", "wide")
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines() if line.strip()}
    assert set(rows) == NAMES and all(row[1] == "Ready" for row in rows.values()), out.stdout
    for host in lan.hosts:  # each node's InternalIP is its own namespace's address (where its API listens)
        assert rows[host.name][5] == host.address, out.stdout
        assert lan.nodes(host.index)[host.name]["ip"] == host.address
    assert lease_holder(lan, 1)[0] == leader
    out = lan.kubectl(2, "get", "leases", "-n", "kube-node-lease", "--no-headers")
    assert sorted(line.split()[:2] for line in out.stdout.splitlines()) == [[n, n] for n in sorted(NAMES)]


def test_a_host_cut_off_goes_notready_reports_the_store_and_comes_back_without_a_duplicate(lan: TestLan) -> None:
    leader = settled(lan)
    cut = next(h for h in lan.hosts if h.name != leader)
    others = [h for h in lan.hosts if h is not cut]
    running = lan.pids(cut.index)
    assert len(running) >= 2, running  # the agent and its node sidecar
    lan.cut(cut.index)
    try:
        for other in others:
            wait_for(lambda o=other: lan.nodes(o.index).get(cut.name, {}).get("ready") not in (None, "True"),
                     timeout=60, what=f"{cut.name} NotReady as {other.name} sees it", explain=lan.explain)
            nodes = lan.nodes(other.index)
            assert all(nodes[o.name]["ready"] == "True" for o in others), nodes
        # the isolated agent, asked from inside its namespace: the store is unreachable, and it says so
        status, body = wait_for(lambda: (lambda r: r if r[0] == 503 and "store" in r[1] else None)(
            lan.healthz(cut.index, inside=True)), timeout=60, what="/healthz 503 naming the store")
        assert "unreachable" in body, body
        assert wait_for(lambda: lan.metric(cut.index, "meshd_store_up", inside=True) == 0, timeout=30,
                        what="meshd_store_up 0")
        assert lan.pids(cut.index) == running  # nothing in it stopped or restarted
        assert cut.proc is not None and cut.proc.poll() is None
    finally:
        lan.heal(cut.index)
    wait_for(lambda: lan.healthz(cut.index)[0] == 200, timeout=60, what=f"{cut.name} healthy again",
             explain=lan.explain)
    settled(lan)
    out = lan.kubectl(cut.index, "get", "nodes", "-o", "json")
    names = [item["metadata"]["name"] for item in json.loads(out.stdout)["items"]]
    assert sorted(names) == sorted(NAMES)  # one Node per host, the healed one too
    assert lan.pids(cut.index) == running


def test_killing_the_leaders_host_moves_leadership_and_the_survivors_stay_ready(lan: TestLan) -> None:
    leader = settled(lan)
    dead = next(h for h in lan.hosts if h.name == leader)
    survivors = [h for h in lan.hosts if h is not dead]
    holder, transitions = lease_holder(lan, survivors[0].index)
    assert holder == leader
    running = {s.name: lan.pids(s.index) for s in survivors}
    killed = lan.kill_host(dead.index)
    assert killed and not lan.pids(dead.index)  # the agent, its sidecar: every process in the namespace

    def moved() -> str:
        found = lease_holder(lan, survivors[0].index)
        return found[0] if found[0] not in ("", leader) and found[1] > transitions else ""
    new = wait_for(moved, timeout=60, what="the Lease kube-system/meshd-controller held by a survivor",
                   explain=lan.explain)
    assert new in {h.name for h in survivors}
    assert wait_for(lan.leader, timeout=30, what="one live leader") == new
    for survivor in survivors:
        nodes = wait_for(lambda s=survivor: (lambda n: n if n.get(leader, {}).get("ready") not in (None, "True")
                                             else None)(lan.nodes(s.index)),
                         timeout=60, what=f"{leader} NotReady as {survivor.name} sees it", explain=lan.explain)
        assert all(nodes[s.name]["ready"] == "True" for s in survivors), nodes
    assert {s.name: lan.pids(s.index) for s in survivors} == running  # nothing on them stopped or restarted
    lan.restart_host(dead.index)  # the machine back: it joins again, as a follower, under its own name
    assert settled(lan) == new
    out = lan.kubectl(dead.index, "get", "nodes", "-o", "json")
    assert sorted(item["metadata"]["name"] for item in json.loads(out.stdout)["items"]) == sorted(NAMES)


def test_the_lan_is_what_the_harness_says(lan: TestLan) -> None:
    """Each agent runs this tree's code in its own namespace, and the hosts reach each other's APIs."""
    host = lan.hosts[0]
    inside = lan.run(host.index, "ip", "-4", "-o", "addr", "show", "dev", "eth0", check=True).stdout
    assert f"{host.address}/24" in inside
    assert host.proc is not None and host.proc.pid in lan.pids(host.index)  # `ip netns exec` became the agent
    environ = Path(f"/proc/{host.proc.pid}/environ").read_bytes().split(b"\0")
    assert any(v.startswith(b"PYTHONPATH=" + str(Path(__file__).resolve().parents[2]).encode()) for v in environ)
    for other in lan.hosts[1:]:
        out = lan.run(host.index, "curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}",
                      other.api + "/healthz")
        assert out.stdout == "200", out
