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


DEPLOYMENT = WEB.split("---")[0]


async def test_kubectl_create_patch_scale_replace_and_server_side_apply(cluster):
    path = await write(cluster, "deploy.yaml", DEPLOYMENT)
    code, out, err = await cluster.kubectl("create", "-f", path)
    assert (code, out.strip()) == (0, "deployment.apps/web created"), err
    code, out, err = await cluster.kubectl("create", "-f", path)
    assert code == 1 and 'Error from server (AlreadyExists)' in err and '"web" already exists' in err, err

    code, out, err = await cluster.kubectl("patch", "deploy", "web", "-p", '{"spec":{"replicas":3}}')
    assert (code, out.strip()) == (0, "deployment.apps/web patched"), err
    assert (await get_json(cluster, "deploy", "web"))["spec"]["replicas"] == 3
    code, out, err = await cluster.kubectl("patch", "deploy", "web", "--type", "merge",
                                           "-p", '{"metadata":{"labels":{"tier":"front"}}}')
    assert code == 0, err
    assert (await get_json(cluster, "deploy", "web"))["metadata"]["labels"] == {"tier": "front"}
    code, out, err = await cluster.kubectl("patch", "deploy", "web", "--type", "json",
                                           "-p", '[{"op":"replace","path":"/spec/replicas","value":1}]')
    assert code == 0, err
    assert (await get_json(cluster, "deploy", "web"))["spec"]["replicas"] == 1
    code, out, err = await cluster.kubectl("patch", "deploy", "web", "-p",  # strategic: merged by name
                                           '{"spec":{"template":{"spec":{"containers":[{"name":"web",'
                                           '"env":[{"name":"A","value":"1"}]}]}}}}')
    assert code == 0, err
    container = (await get_json(cluster, "deploy", "web"))["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "A", "value": "1"}] and container["ports"][0]["containerPort"] == 8080

    code, out, err = await cluster.kubectl("scale", "deploy", "web", "--replicas=2")
    assert (code, out.strip()) == (0, "deployment.apps/web scaled"), err
    await rolled_out(cluster)
    code, out, err = await cluster.kubectl("get", "deploy", "web", "--no-headers")
    assert out.split()[1] == "2/2", out

    code, out, err = await cluster.kubectl("replace", "-f", await write(
        cluster, "replaced.yaml", DEPLOYMENT.replace("replicas: 2", "replicas: 1")))
    assert (code, out.strip()) == (0, "deployment.apps/web replaced"), err
    deploy = await get_json(cluster, "deploy", "web")
    assert deploy["spec"]["replicas"] == 1 and "labels" not in deploy["metadata"]  # replaced whole
    assert "env" not in deploy["spec"]["template"]["spec"]["containers"][0]

    code, out, err = await cluster.kubectl("apply", "--server-side", "-f", await write(
        cluster, "ssa.yaml", DEPLOYMENT.replace("replicas: 2", "replicas: 3")))
    assert (code, out.strip()) == (0, "deployment.apps/web serverside-applied"), err
    assert (await get_json(cluster, "deploy", "web"))["spec"]["replicas"] == 3
    service = await write(cluster, "svc.yaml", WEB.split("---")[1])
    code, out, err = await cluster.kubectl("apply", "--server-side", "-f", service)
    assert (code, out.strip()) == (0, "service/web serverside-applied"), err  # created by an apply patch
    code, out, err = await cluster.kubectl("diff", "--server-side", "-f", service)
    assert code == 0, (out, err)  # no difference


async def test_kubectl_rollout_restart_undo_pause_resume(cluster):
    code, out, err = await cluster.kubectl("apply", "-f", await write(cluster, "web.yaml", WEB))
    assert code == 0, err
    await rolled_out(cluster)
    first = (await get_json(cluster, "deploy", "web"))["spec"]["template"]

    code, out, err = await cluster.kubectl("rollout", "restart", "deployment/web")
    assert (code, out.strip()) == (0, "deployment.apps/web restarted"), err
    await rolled_out(cluster)
    restarted = (await get_json(cluster, "deploy", "web"))["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" in restarted["metadata"]["annotations"]
    assert len(await replicasets(cluster)) == 2

    code, out, err = await cluster.kubectl("rollout", "history", "deployment/web")
    assert code == 0 and [line.split()[0] for line in out.splitlines()[2:] if line.strip()] == ["1", "2"], out
    code, out, err = await cluster.kubectl("rollout", "undo", "deployment/web")
    assert (code, out.strip()) == (0, "deployment.apps/web rolled back"), err
    await rolled_out(cluster)
    back = (await get_json(cluster, "deploy", "web"))["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" not in (back["metadata"].get("annotations") or {})
    assert [(c["image"], c["command"]) for c in back["spec"]["containers"]] == [
        (c["image"], c["command"]) for c in first["spec"]["containers"]]
    rs = await replicasets(cluster)
    active = [r for r in rs if r["spec"]["replicas"] > 0]
    assert len(rs) == 2 and len(active) == 1  # revision 1's ReplicaSet came back as revision 3
    assert active[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"

    code, out, err = await cluster.kubectl("rollout", "pause", "deployment/web")
    assert (code, out.strip()) == (0, "deployment.apps/web paused"), err
    code, out, err = await cluster.kubectl("set", "env", "deployment/web", "COLOUR=red")
    assert code == 0, err
    await asyncio.sleep(1)  # a paused Deployment starts no rollout (let the controller have a go)
    assert len([r for r in await replicasets(cluster) if r["spec"]["replicas"] > 0]) == 1
    assert len(await replicasets(cluster)) == 2
    code, out, err = await cluster.kubectl("rollout", "resume", "deployment/web")
    assert (code, out.strip()) == (0, "deployment.apps/web resumed"), err
    await rolled_out(cluster)
    assert len(await replicasets(cluster)) == 3
