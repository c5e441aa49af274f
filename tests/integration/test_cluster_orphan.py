"""`kubectl delete --cascade=orphan` on a shared etcd store, through an agent that does not lead and through the
leader: the leader, which runs the pods and follows the store, keeps the orphaned ReplicaSet's pod running (it is
not replaced)."""

from __future__ import annotations

import pytest

from tests.integration import test_cluster_etcd
from tests.integration.test_cluster_etcd import Member, leaders, poll

members = test_cluster_etcd.members  # the fixture: three agents on the real etcd of conftest.py

pytestmark = pytest.mark.slow

SLEEPER = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: keep}
spec:
  replicas: 1
  selector: {matchLabels: {app: keep}}
  template:
    metadata: {labels: {app: keep}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: busybox, command: [sleep, "3600"]}
"""


async def running(member: Member) -> list[str]:
    pods = (await member.items("pods")).values()
    return sorted(p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"
                  and p["metadata"]["labels"].get("app") == "keep")


@pytest.mark.parametrize("through", ["follower", "leader"])
async def test_orphaning_keeps_the_leaders_pod(members: list[Member], through: str) -> None:
    (leader_name,) = await poll(lambda: leaders(members))
    leader = next(m for m in members if m.name == leader_name)
    follower = next(m for m in members if m.name != leader_name) if through == "follower" else leader
    (follower.directory / "keep.yaml").write_text(SLEEPER)
    code, out, err = await follower.kubectl("apply", "-f", str(follower.directory / "keep.yaml"))
    assert code == 0, err
    (pod,) = await poll(lambda: running(leader))

    code, out, err = await follower.kubectl("delete", "deployment", "keep", "--cascade=orphan")
    assert code == 0, err

    async def bare_on_leader() -> bool:
        rs = [r for r in (await leader.items("replicasets")).values() if r["metadata"]["labels"].get("app") == "keep"]
        return len(rs) == 1 and "ownerReferences" not in rs[0]["metadata"]

    assert await poll(bare_on_leader)
    rs_name = next(n for n, r in (await leader.items("replicasets")).items() if r["metadata"]["labels"]["app"] == "keep")
    code, out, err = await follower.kubectl("scale", "rs", rs_name, "--replicas=2")  # passes through reconciles
    assert code == 0, err

    async def two() -> list[str] | None:
        names = await running(leader)
        return names if len(names) == 2 else None

    assert pod in await poll(two)  # the orphaned pod kept running: never replaced
    # deleted through the leader: a follower may keep showing a deleted bare ReplicaSet when the store's
    # DELETED event overtakes its own delete (meshd.cluster.follow; reported, not this test's subject)
    code, out, err = await leader.kubectl("delete", "rs", rs_name)
    assert code == 0, err

    async def gone() -> bool:
        return not await running(leader)

    assert await poll(gone)
