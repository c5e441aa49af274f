"""Terminating objects on a shared etcd store (three agents, the real kubectl): a Foreground delete through an
agent that does not lead leaves the Deployment Terminating on every agent (deletionTimestamp, foregroundDeletion)
while the leader stops its pods on their nodes, then every agent sees it go; a user's finalizer set through one
agent holds a ConfigMap until a PATCH through another takes it off. The pods ignore SIGTERM until the test
creates a file, so the Terminating state lasts as long as the test wants (no timing)."""

from __future__ import annotations

import json

import pytest

from tests.integration import test_cluster_etcd
from tests.integration.test_cluster_etcd import Member, leaders, poll

members = test_cluster_etcd.members  # the fixture: three agents on the real etcd of conftest.py

pytestmark = pytest.mark.slow

STUBBORN = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: fgc}
spec:
  replicas: 2
  selector: {matchLabels: {app: fgc}}
  template:
    metadata: {labels: {app: fgc}}
    spec:
      terminationGracePeriodSeconds: 600
      containers:
      - {name: main, image: busybox, command: [sh, -c, "trap '' TERM; while [ ! -e RELEASE ]; do sleep 0.1; done"]}
"""


async def get(member: Member, *what: str) -> dict | None:
    code, out, err = await member.kubectl("get", *what, "-o", "json")
    if code == 1 and "NotFound" in err:
        return None
    assert code == 0, err
    return json.loads(out)


async def test_a_foreground_delete_through_a_follower_keeps_the_owner_terminating_on_every_agent(
        members: list[Member]) -> None:
    (leader_name,) = await poll(lambda: leaders(members))
    follower = next(m for m in members if m.name != leader_name)
    release = follower.directory / "fgc.release"
    (follower.directory / "fgc.yaml").write_text(STUBBORN.replace("RELEASE", str(release)))
    code, out, err = await follower.kubectl("apply", "-f", str(follower.directory / "fgc.yaml"))
    assert code == 0, err
    try:
        async def running() -> bool:
            pods = (await get(follower, "pods", "-l", "app=fgc") or {}).get("items") or []
            return len(pods) == 2 and all(p["status"].get("phase") == "Running" for p in pods)

        assert await poll(running)
        code, out, err = await follower.kubectl("delete", "deployment", "fgc", "--cascade=foreground",
                                                "--wait=false")
        assert code == 0, err

        for member in members:
            async def terminating(m: Member = member) -> bool:
                shown = await get(m, "deployment", "fgc")
                pods = (await get(m, "pods", "-l", "app=fgc") or {}).get("items") or []
                return (shown is not None and shown["metadata"].get("finalizers") == ["foregroundDeletion"]
                        and bool(shown["metadata"].get("deletionTimestamp")) and len(pods) == 2
                        and all(p["metadata"].get("deletionTimestamp") for p in pods))

            assert await poll(terminating), member.name
    finally:
        release.touch()
    code, out, err = await follower.kubectl("wait", "--for=delete", "deployment/fgc", "--timeout=120s")
    assert code == 0, (out, err)
    for member in members:
        async def gone(m: Member = member) -> bool:
            return (await get(m, "deployment", "fgc") is None
                    and not (await get(m, "pods", "-l", "app=fgc") or {}).get("items")
                    and not (await get(m, "rs", "-l", "app=fgc") or {}).get("items"))

        assert await poll(gone), member.name


async def test_a_user_finalizer_holds_a_configmap_until_another_agent_takes_it_off(members: list[Member]) -> None:
    one, other = members[0], members[1]
    (one.directory / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n"
                                           "metadata: {name: kept, finalizers: [example.com/hold]}\ndata: {a: '1'}\n")
    code, out, err = await one.kubectl("apply", "-f", str(one.directory / "cm.yaml"))
    assert code == 0, err
    code, out, err = await one.kubectl("delete", "configmap", "kept", "--wait=false")
    assert code == 0, err

    for member in members:
        async def held(m: Member = member) -> bool:
            shown = await get(m, "configmap", "kept")
            return shown is not None and bool(shown["metadata"].get("deletionTimestamp"))

        assert await poll(held), member.name
    code, out, err = await other.kubectl("patch", "configmap", "kept", "-p", '{"data": {"a": "2"}}')
    assert code == 1 and "being deleted" in err, (out, err)
    code, out, err = await other.kubectl("patch", "configmap", "kept", "--type=json", "-p",
                                         '[{"op": "remove", "path": "/metadata/finalizers"}]')
    assert code == 0, (out, err)
    for member in members:
        async def gone(m: Member = member) -> bool:
            return await get(m, "configmap", "kept") is None

        assert await poll(gone), member.name
