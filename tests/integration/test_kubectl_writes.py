"""kubectl's write flows end to end, the real kubectl (v1.37) and the Python client against a real agent (process
driver): apply (client-side and server-side), create, replace, patch (strategic, merge, json), scale, rollout
restart/undo/pause/resume, diff, delete; and bad input answered with the Status a real API server gives, changing
nothing."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.integration import test_kubectl
from tests.integration.test_kubectl import WEB, Cluster

cluster = test_kubectl.cluster  # the fixture: a real agent, kubectl and the Python client pointed at it

pytestmark = [pytest.mark.slow]

DEPLOY_PATH = "/apis/apps/v1/namespaces/default/deployments"


async def write(cluster: Cluster, tmp_name: str, text: str) -> str:
    path = cluster.cache / tmp_name
    path.write_text(text)
    return str(path)


async def until(check, what: str, tries: int = 600):
    for _ in range(tries):
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what}")


async def get_json(cluster: Cluster, *args: str) -> dict:
    code, out, err = await cluster.kubectl("get", *args, "-o", "json")
    assert code == 0, err
    return json.loads(out)


async def replicasets(cluster: Cluster) -> list[dict]:
    return (await get_json(cluster, "rs"))["items"]


async def rolled_out(cluster: Cluster) -> None:
    code, out, err = await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert code == 0 and out.splitlines()[-1] == 'deployment "web" successfully rolled out', (out, err)


async def test_kubectl_apply_creates_then_rolls_out_a_changed_manifest(cluster):
    path = await write(cluster, "web.yaml", WEB)
    code, out, err = await cluster.kubectl("apply", "-f", path)
    assert code == 0, err
    assert sorted(out.splitlines()) == ["deployment.apps/web created", "service/web created"]
    await rolled_out(cluster)
    code, out, err = await cluster.kubectl("apply", "-f", path)
    assert code == 0 and sorted(out.splitlines()) == ["deployment.apps/web unchanged", "service/web unchanged"], err

    changed = WEB.replace("periodSeconds: 1", "periodSeconds: 1\n        env:\n        - {name: COLOUR, value: blue}")
    path = await write(cluster, "web2.yaml", changed)
    code, out, err = await cluster.kubectl("apply", "-f", path)
    assert code == 0 and "deployment.apps/web configured" in out, err
    await rolled_out(cluster)
    rs = await replicasets(cluster)
    assert len(rs) == 2
    revisions = sorted(r["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for r in rs)
    assert revisions == ["1", "2"]
    deploy = await get_json(cluster, "deploy", "web")
    assert deploy["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "COLOUR", "value": "blue"}]
    assert "kubectl.kubernetes.io/last-applied-configuration" in deploy["metadata"]["annotations"]

    code, out, err = await cluster.kubectl("diff", "-f", await write(cluster, "web.yaml", WEB))
    assert code == 1 and "COLOUR" in out, (out, err)  # 1: there are differences; nothing changed
    deploy = await get_json(cluster, "deploy", "web")
    assert deploy["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "COLOUR", "value": "blue"}]

    code, out, err = await cluster.kubectl("delete", "-f", path)
    assert code == 0 and sorted(out.splitlines()) == ['deployment.apps "web" deleted from default namespace',
                                                      'service "web" deleted from default namespace'], (out, err)
    code, out, err = await cluster.kubectl("get", "deploy,svc", "-o", "name")
    assert out.strip() == "", out
