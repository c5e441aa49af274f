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


REPLICASET = """\
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: loose}
spec:
  replicas: 3
  selector: {matchLabels: {app: loose}}
  template:
    metadata: {labels: {app: loose}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: busybox, command: [sleep, "3600"]}
"""


def processes(members: list[Member]) -> dict[str, tuple[str, int]]:
    """Every node's running pods of the ReplicaSet: pod -> (node, pid), from each driver's records."""
    from tests.integration.test_cluster_pods import running_pods

    return {pod: (m.name, pid) for m in members for pod, pid in running_pods(m).items() if pod.startswith("loose-")}


@pytest.mark.parametrize("through", ["follower", "leader"])
async def test_orphaning_a_replicasets_pods_keeps_them_running_on_their_nodes(members: list[Member],
                                                                           through: str) -> None:
    (leader_name,) = await poll(lambda: leaders(members))
    leader = next(m for m in members if m.name == leader_name)
    client = next(m for m in members if m.name != leader_name) if through == "follower" else leader
    (client.directory / "rs.yaml").write_text(REPLICASET)
    code, out, err = await client.kubectl("apply", "-f", str(client.directory / "rs.yaml"))
    assert code == 0, err

    async def three() -> dict[str, tuple[str, int]] | None:
        found = processes(members)
        listed = [p for p in (await leader.items("pods")).values() if p["status"].get("phase") == "Running"]
        return found if len(found) == 3 and len(listed) == 3 else None

    before = await poll(three)
    code, out, err = await client.kubectl("delete", "rs", "loose", "--cascade=orphan")
    assert (code, out.strip()) == (0, 'replicaset.apps "loose" deleted from default namespace'), err

    for member in members:  # every agent shows them bare, running, the ReplicaSet gone
        async def bare(m: Member = member) -> bool:
            pods = {n: p for n, p in (await m.items("pods")).items() if n.startswith("loose-")}
            return (set(pods) == set(before) and "loose" not in await m.items("replicasets")
                    and all("ownerReferences" not in p["metadata"] and p["status"].get("phase") == "Running"
                            for p in pods.values()))

        assert await poll(bare), member.name
    # the leader reconciles after the orphaning (another ReplicaSet's pod starts): nothing of ours goes
    (client.directory / "other.yaml").write_text(REPLICASET.replace("loose", "other").replace("replicas: 3",
                                                                                              "replicas: 1"))
    code, out, err = await client.kubectl("apply", "-f", str(client.directory / "other.yaml"))
    assert code == 0, err

    async def other_running() -> bool:
        return any(n.startswith("other-") and p["status"].get("phase") == "Running"
                   for n, p in (await leader.items("pods")).items())

    assert await poll(other_running)
    assert processes(members) == before  # the very same processes, on the same nodes
    victim = sorted(before)[0]
    code, out, err = await client.kubectl("delete", "pod", victim)
    assert code == 0, err

    async def victim_gone() -> bool:
        return victim not in await leader.items("pods") and victim not in processes(members)

    assert await poll(victim_gone)  # a bare pod: not replaced
    assert len([n for n in await leader.items("pods") if n.startswith("loose-")]) == 2
