"""How soon the etcd client moves to a member that can commit, on a real three-member etcd (Debian's
etcd-server; each member in a network namespace of its own on a test bridge, tests/integration/netns_etcd.py;
root only). Each case is run --runs times; the median and the worst are printed:

- leader killed: etcd's raft leader SIGKILLed, then at once a write (one transaction) through a client whose
  first member is a follower (it still forwards to the dead leader until it notices): time until it succeeds.
- minority, at once: the client's first member cut off from the other two (routes blackholed in its namespace),
  a write sent right away (the member still believes it has a leader): time until it succeeds.
- minority, settled: the same write sent once the cut-off member knows it has no leader.
- minority probe: once the member knows, the store's probe (a serializable read): which member answers it.

    python3 -m bench.etcd_failover_bench [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from meshd.store.etcdclient import EtcdClient, b64  # noqa: E402
from tests.integration.netns_etcd import SplitEtcdLan  # noqa: E402
from tests.integration.netns_harness import usable, wait_for  # noqa: E402

KEY = b64("/meshd/bench/failover")


def put(value: str) -> list[dict[str, object]]:
    return [{"request_put": {"key": KEY, "value": b64(value)}}]


async def timed_write(client: EtcdClient) -> tuple[float, str]:
    start = time.monotonic()
    try:
        await client.txn([], put("x"))
        return time.monotonic() - start, ""
    except Exception as error:  # noqa: BLE001 - the figure says what failed
        return time.monotonic() - start, f"{type(error).__name__}: {error}"


def raft_leader(lan: SplitEtcdLan) -> int:
    """The index of etcd's raft leader (waits for one)."""
    def found() -> list[int]:
        statuses = [lan.status(k) for k in range(3)]
        return [k for k, s in enumerate(statuses) if s.get("leader") and s["leader"] == s["header"]["member_id"]]
    return int(wait_for(found, timeout=30, what="a raft leader")[0])


async def leader_killed(lan: SplitEtcdLan) -> tuple[float, str]:
    assert lan.etcd is not None
    leader = raft_leader(lan)
    followers = [k for k in range(3) if k != leader]
    client = EtcdClient([lan.etcd.endpoints[k] for k in (*followers, leader)])
    try:
        await client.txn([], put("warm"))
        lan.etcd.members[leader].stop()
        figure = await timed_write(client)
    finally:
        await client.close()
    lan.etcd.restart(lan.etcd.members[leader])
    return figure


async def minority(lan: SplitEtcdLan, *, settled: bool) -> tuple[float, str]:
    assert lan.etcd is not None
    leader = raft_leader(lan)
    cut = next(k for k in range(3) if k != leader)  # a follower: it believes in its leader for a while
    client = EtcdClient([lan.etcd.endpoints[k] for k in (cut, *(k for k in range(3) if k != cut))])
    try:
        await client.txn([], put("warm"))
        lan.isolate(cut)
        if settled:
            wait_for(lambda: not lan.has_leader(cut), timeout=30, what="the cut-off member without a leader")
        figure = await timed_write(client)
    finally:
        await client.close()
        lan.rejoin(cut)
    wait_for(lambda: all(lan.has_leader(k) for k in range(3)), timeout=60, what="every member with a leader")
    return figure


def report(name: str, figures: list[tuple[float, str]]) -> None:
    times = [t for t, _ in figures]
    errors = sorted({e for _, e in figures if e})
    print(f"{name:<22} median {statistics.median(times):6.2f}s  worst {max(times):6.2f}s  "
          f"({len(figures) - sum(1 for _, e in figures if e)}/{len(figures)} succeeded)"
          + (f"  errors: {'; '.join(errors)}" if errors else ""))


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="meshd-etcd-failover-") as tmp, \
            SplitEtcdLan(Path(tmp) / "lan", hosts_wanted=0, agents=False, mdns=False) as lan:
        cases = {"leader killed": lambda: leader_killed(lan),
                 "minority, at once": lambda: minority(lan, settled=False),
                 "minority, settled": lambda: minority(lan, settled=True)}
        for name, case in cases.items():
            report(name, [await case() for _ in range(runs)])


if __name__ == "__main__":
    if why := usable():
        sys.exit(f"cannot build test hosts here: {why}")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))
