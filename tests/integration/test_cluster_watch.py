"""The watch cache on a shared store: two `meshd agent --store etcd://...` processes on one real etcd. A watch on
one agent from a list's resourceVersion replays a Service written through the other (the etcd watch feeds the
cache; its resourceVersions are never below etcd's revisions), and a too-old resourceVersion is 410 Expired."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.etcd_harness import EtcdCluster
from tests.integration.test_cluster_etcd import Member

pytestmark = pytest.mark.slow

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: shared
spec:
  selector: {app: shared}
  ports:
  - {name: http, port: 80, targetPort: 8080}
"""


@pytest.fixture
async def two(tmp_path: Path, etcd: EtcdCluster) -> AsyncIterator[list[Member]]:
    started = [Member(tmp_path / name, name, etcd.url) for name in ("w1", "w2")]
    try:
        await asyncio.gather(*(m.start() for m in started))
        yield started
    finally:
        await asyncio.gather(*(m.stop() for m in started))


async def raw(member: Member, path: str) -> tuple[int, str, str]:
    return await member.kubectl("get", "--raw", path)


async def test_a_watch_on_one_agent_replays_a_write_through_another_and_an_old_version_is_410(two) -> None:
    first, second = two
    code, out, err = await raw(second, "/api/v1/namespaces/default/services")
    assert code == 0, err
    listed = int(json.loads(out)["metadata"]["resourceVersion"])
    (first.directory / "svc.yaml").write_text(SERVICE)
    code, out, err = await first.kubectl("apply", "-f", str(first.directory / "svc.yaml"))
    assert code == 0, err
    code, out, err = await first.kubectl("get", "service", "shared", "-o", "json")
    assert code == 0, err
    revision = int(json.loads(out)["metadata"]["resourceVersion"])  # etcd's mod_revision of the write

    async def replayed() -> list[dict]:
        code, out, err = await raw(second, f"/api/v1/namespaces/default/services?watch=true&resourceVersion={listed}"
                                           "&timeoutSeconds=1")
        assert code == 0, err
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    for _ in range(30):  # the second agent's etcd watch brings the write within moments
        events = await replayed()
        if events:
            break
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "shared")]
    version = int(events[0]["object"]["metadata"]["resourceVersion"])
    assert version > listed and version >= revision  # after the list, never below etcd's revision

    code, out, err = await raw(second, "/api/v1/namespaces/default/services?watch=true&resourceVersion=1")
    assert code == 0, err
    (error,) = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert (error["type"], error["object"]["code"], error["object"]["reason"]) == ("ERROR", 410, "Expired")
