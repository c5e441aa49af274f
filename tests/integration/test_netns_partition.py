"""A partition, on two test hosts (network namespaces on a bridge, tests/integration/netns_harness.py), each its
own `meshd agent --store etcd://...` with the process driver and its node sidecar, a Deployment of 6 web
servers (3 per node) behind a Service. One host's cable is pulled (its veth down):
- it notices promptly (its store probe: /healthz 503 naming the store, `meshd_store_up` 0, a log line), not
  only once a heartbeat write times out;
- it keeps running its pods (the same processes all along);
- once the other node's Lease would have expired (the grace), its sidecar sends nothing to that node's
  endpoints, which it can no longer vouch for: the endpoints its agent gives the sidecar are its own only, and
  every request from it through the Service succeeds, answered by its own pods;
- the other side sees it NotReady and runs the 6 pods itself; healed, the host stops its replaced pods."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.netns_harness import TestLan, usable, wait_for
from tests.integration.test_netns_cluster_e2e import MANIFEST, SERVER, pods, servers_on, spread

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420),
              pytest.mark.skipif(bool(usable()), reason=usable() or "usable")]

GRACE = 3.0


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[TestLan]:
    with TestLan(tmp_path / "lan", hosts_wanted=2, sidecar=True, node_grace=GRACE,
                 agent_args=("--pod-eviction-timeout", "2")) as built:
        yield built


def through_service(lan: TestLan, i: int, address: str, tries: int) -> list[str]:
    """What `tries` requests from host i to the Service got: the answering pod's name, or "failed"."""
    script = (f"for n in $(seq {tries}); do curl -sS --max-time 3 http://{address}/ || echo failed; done")
    out = lan.run(i, "sh", "-c", script, timeout=60).stdout
    return [m.group(1) or "failed" for m in re.finditer(r"^(?:(web-\S+) on host\d|failed)$", out, re.M)]


def sidecar_endpoints(lan: TestLan, i: int) -> list[dict[str, Any]] | None:
    """The Service's endpoints as host i's agent gives them to its sidecar, asked from inside the host."""
    import json

    host = lan.hosts[i]
    out = lan.run(i, "curl", "-sf", "-m", "3", "-H", f"Authorization: Bearer {host.token}",
                  f"{host.api}/v1/namespaces/default/endpoints/web").stdout
    try:
        return list(json.loads(out)["endpoints"])
    except (ValueError, KeyError):
        return None


def test_a_cut_off_host_reports_the_store_keeps_its_pods_and_serves_only_what_it_can_vouch_for(
        lan: TestLan, tmp_path: Path) -> None:
    server = tmp_path / "server.py"
    server.write_text(SERVER)
    manifest = tmp_path / "web.yaml"
    manifest.write_text(MANIFEST.format(python=sys.executable, server=server))
    names = {h.name for h in lan.hosts}
    wait_for(lambda: {n for n, node in lan.nodes(0).items() if node["ready"] == "True"} == names, timeout=60,
             what="2 Ready nodes", explain=lan.explain)
    applied = lan.kubectl(0, "apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr + lan.explain()
    wait_for(lambda: spread(lan, 0, names) == {"host0": 3, "host1": 3}, timeout=120, what="3 Ready pods per node",
             explain=lambda: f"\n{pods(lan, 0)}{lan.explain()}")
    address = lan.kubectl(0, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
    every = {p["name"] for p in pods(lan, 0)}
    leader = wait_for(lan.leader, timeout=60, what="one leader", explain=lan.explain)
    cut = next(h for h in lan.hosts if h.name != leader)
    other = next(h for h in lan.hosts if h is not cut)
    own = {p["name"] for p in pods(lan, 0) if p["node"] == cut.name}
    wait_for(lambda: set(through_service(lan, cut.index, address, 40)) == every, timeout=90,
             what=f"all 6 replicas answering {cut.name}", explain=lan.explain)
    running = lan.pids(cut.index)
    assert servers_on(lan, cut.index, server) == 3

    lan.cut(cut.index)
    cut_at = time.monotonic()
    try:
        wait_for(lambda: lan.metric(cut.index, "meshd_store_up", inside=True) == 0, timeout=30,
                 what="meshd_store_up 0 on the cut host", explain=lan.explain)
        noticed = time.monotonic() - cut_at
        status, body = lan.healthz(cut.index, inside=True)
        assert status == 503 and "store" in body and "unreachable" in body, body
        assert "the shared store is unreachable" in cut.log.read_text()

        def only_own() -> list[dict[str, Any]] | None:
            found = sidecar_endpoints(lan, cut.index)
            return found if found is not None and {e["name"] for e in found} == own else None
        endpoints = wait_for(only_own, timeout=30, what=f"{cut.name}'s sidecar given its own endpoints only",
                             explain=lan.explain)
        dropped = time.monotonic() - cut_at
        assert not any(e.get("gateway") for e in endpoints), endpoints  # nothing through another node's gateway
        answered = through_service(lan, cut.index, address, 30)
        assert len(answered) == 30 and set(answered) <= own, answered  # every request served by its own pods

        # the other side: the cut host NotReady, its pods made again there; the cut host still runs its own
        wait_for(lambda: spread(lan, other.index, {other.name}) is not None, timeout=90,
                 what=f"6 Ready pods on {other.name}", explain=lambda: f"\n{pods(lan, other.index)}{lan.explain()}")
        assert lan.pids(cut.index) == running and servers_on(lan, cut.index, server) == 3
        assert cut.proc is not None and cut.proc.poll() is None
        print(f"cut: the store reported unreachable after {noticed:.1f}s, the other node's endpoints dropped after "
              f"{dropped:.1f}s (grace {GRACE:g}s)")
    finally:
        lan.heal(cut.index)
    wait_for(lambda: lan.healthz(cut.index)[0] == 200, timeout=60, what=f"{cut.name} healthy again",
             explain=lan.explain)
    wait_for(lambda: servers_on(lan, cut.index, server) == 0, timeout=60,
             what="the healed host stopping its replaced pods", explain=lan.explain)
    wait_for(lambda: spread(lan, 0, names) is not None, timeout=90, what="6 pods after healing",
             explain=lambda: f"\n{pods(lan, 0)}{lan.explain()}")
    assert sum(servers_on(lan, h.index, server) for h in lan.hosts) == 6
