"""kubectl's write flows end to end, the real kubectl (v1.37) and the Python client against a real agent (process
driver): apply (client-side and server-side), create, replace, patch (strategic, merge, json), scale, rollout
restart/undo/pause/resume, diff, delete; and bad input answered with the Status a real API server gives, changing
nothing."""

from __future__ import annotations

import asyncio
import json
import time

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


async def kubectl_with(cluster: Cluster, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec("kubectl", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env={**cluster.env(), **env})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


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
    changes = [line for line in out.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert all("COLOUR" in line or "blue" in line or "env:" in line for line in changes), out  # only the change
    # the live object, edited as a user edits it (`get -o yaml`, status and all): only the edit differs
    live = (await get_json(cluster, "deploy", "web"))
    live["spec"]["replicas"] = live["status"]["replicas"] = 5
    code, out, err = await cluster.kubectl("diff", "-f", await write(cluster, "live.json", json.dumps(live)))
    changes = [line for line in out.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert code == 1 and changes == ["-  replicas: 2", "+  replicas: 5"], (out, err)
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

    code, out, err = await cluster.kubectl("annotate", "deploy", "web", "team=blue")
    assert (code, out.strip()) == (0, "deployment.apps/web annotated"), err
    edit = await kubectl_with(cluster, {"KUBE_EDITOR": "sed -i s/team:\\ blue/team:\\ green/"},
                              "edit", "deploy", "web")
    assert edit[0] == 0 and edit[1].strip() == "deployment.apps/web edited", edit
    assert (await get_json(cluster, "deploy", "web"))["metadata"]["annotations"]["team"] == "green"

    code, out, err = await cluster.kubectl("scale", "deploy", "web", "--replicas=2")
    assert (code, out.strip()) == (0, "deployment.apps/web scaled"), err
    await rolled_out(cluster)

    async def two_ready() -> bool:  # a probe may fail once on a busy machine: ready again at the next
        _, text, _ = await cluster.kubectl("get", "deploy", "web", "--no-headers")
        return text.split()[1:2] == ["2/2"]

    await until(two_ready, "2/2 ready after kubectl scale")

    code, out, err = await cluster.kubectl("replace", "-f", await write(
        cluster, "replaced.yaml", DEPLOYMENT.replace("replicas: 2", "replicas: 1")))
    assert (code, out.strip()) == (0, "deployment.apps/web replaced"), err
    deploy = await get_json(cluster, "deploy", "web")
    assert deploy["spec"]["replicas"] == 1 and "labels" not in deploy["metadata"]  # replaced whole
    assert "env" not in deploy["spec"]["template"]["spec"]["containers"][0]

    ssa = await write(cluster, "ssa.yaml", DEPLOYMENT.replace("replicas: 2", "replicas: 3"))
    code, out, err = await cluster.kubectl("apply", "--server-side", "-f", ssa)
    assert code == 1 and 'conflict with "kubectl-replace" using apps/v1: .spec.replicas' in err, err  # as Kubernetes
    code, out, err = await cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", ssa)
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


CERTIFICATE = """\
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web}
spec:
  secretName: web-tls
  dnsNames: [web.example.com]
  issuerRef: {name: letsencrypt, kind: ClusterIssuer}
"""  # a custom resource whose definition is not installed (meshd has none)


def users_part(obj: dict) -> tuple:
    """What a write of the object changes (the controller's status writes change the resourceVersion too)."""
    meta = obj["metadata"]
    return meta["generation"], meta.get("labels"), meta.get("annotations"), meta.get("managedFields"), obj["spec"]


async def test_bad_writes_get_the_status_a_real_api_server_gives_and_change_nothing(cluster):
    code, _out, err = await cluster.kubectl("create", "-f", await write(cluster, "deploy.yaml", DEPLOYMENT))
    assert code == 0, err
    first_version = (await get_json(cluster, "deploy", "web"))["metadata"]["resourceVersion"]
    code, _, err = await cluster.kubectl("label", "deploy", "web", "tier=front")
    assert code == 0, err
    before = await get_json(cluster, "deploy", "web")
    assert before["metadata"]["resourceVersion"] != first_version
    token = cluster.token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    web_path = DEPLOY_PATH + "/web"
    stale = {**before, "metadata": {**before["metadata"], "resourceVersion": first_version}}
    unknown = {**before, "spec": {**before["spec"], "bogus": 1}}
    negative = {**before, "spec": {**before["spec"], "replicas": -1}}
    merge, json_patch = "application/merge-patch+json", "application/json-patch+json"
    cases = [  # method, path, content type, body, code, reason
        ("PATCH", web_path, json_patch, "[{\"op\": \"explode\"}]", 400, "BadRequest"),
        ("PATCH", web_path, json_patch, '[{"op": "test", "path": "/spec/replicas", "value": 9}]', 400, "BadRequest"),
        ("PATCH", web_path, merge, "{not json", 400, "BadRequest"),
        ("PATCH", web_path, "text/plain", "{}", 415, "UnsupportedMediaType"),
        ("PUT", web_path, "application/json", json.dumps(stale), 409, "Conflict"),
        ("PATCH", web_path, merge,
         json.dumps({"metadata": {"resourceVersion": first_version}, "spec": {"replicas": 5}}), 409,
         "Conflict"),
        ("PUT", web_path + "?fieldValidation=Strict", "application/json", json.dumps(unknown), 400, "BadRequest"),
        ("PATCH", web_path + "?fieldValidation=Strict", merge, '{"spec": {"bogus": 1}}', 400, "BadRequest"),
        ("PUT", web_path, "application/json", json.dumps(negative), 422, "Invalid"),
        ("POST", DEPLOY_PATH, "application/json", json.dumps(before), 409, "AlreadyExists"),
        ("POST", "/apis/apps/v1/namespaces/default/widgets", "application/json", "{}", 404, "NotFound"),
        ("PATCH", DEPLOY_PATH + "/nope", merge, "{}", 404, "NotFound"),
        ("PATCH", "/api/v1/namespaces/default/endpoints/web", merge, "{}", 405, "MethodNotAllowed"),
        ("PUT", web_path.replace("/web", "/other"), "application/json", json.dumps(before), 400, "BadRequest"),
        ("PATCH", web_path + "/scale", merge, '{"spec": {"replicas": -2}}', 422, "Invalid"),
    ]
    async with aiohttp.ClientSession(cluster.api, headers=headers) as http:
        for method, path, content_type, body, code, reason in cases:
            async with http.request(method, path, data=body, headers={"Content-Type": content_type}) as reply:
                answer = await reply.json()
                assert (reply.status, answer.get("kind"), answer.get("reason")) == (code, "Status", reason), (
                    method, path, body, answer)
        async with http.put(web_path, json=negative) as reply:
            causes = (await reply.json())["details"]["causes"]
            assert [c["field"] for c in causes] == ["spec.replicas"]
        async with http.patch(web_path + "?dryRun=All", data='{"spec": {"replicas": 7}}',
                              headers={"Content-Type": merge}) as reply:
            assert reply.status == 200 and (await reply.json())["spec"]["replicas"] == 7
    after = await get_json(cluster, "deploy", "web")
    assert users_part(after) == users_part(before)

    code, _, err = await cluster.kubectl("apply", "-f", await write(
        cluster, "bad.yaml", DEPLOYMENT.replace("  replicas: 2", "  replicas: 2\n  bogus: 1")))
    assert code == 1 and "(BadRequest)" in err and 'unknown field "spec.bogus"' in err, err
    code, _, err = await cluster.kubectl("patch", "deploy", "web", "--type", "json", "-p",
                                           '[{"op": "remove", "path": "/spec/nope"}]')
    assert code == 1 and "(BadRequest)" in err, err
    assert users_part(await get_json(cluster, "deploy", "web")) == users_part(before)
    # a kind meshd does not serve: kubectl's own message, as a real API server without that kind gets (kubectl
    # validates with the OpenAPI v3 documents, then asks /openapi/v2 in protobuf for a kind they do not describe)
    code, _, err = await cluster.kubectl("apply", "-f", await write(cluster, "certificate.yaml", CERTIFICATE))
    assert code == 1 and 'no matches for kind "Certificate" in version "cert-manager.io/v1"' in err, err


async def test_the_python_client_creates_patches_replaces_and_deletes(cluster):
    kubernetes = pytest.importorskip("kubernetes")
    import yaml

    def use_the_client() -> dict:
        client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        apps = kubernetes.client.AppsV1Api(client)
        seen: dict = {}
        created = apps.create_namespaced_deployment("default", yaml.safe_load(DEPLOYMENT))
        seen["created"] = (created.metadata.name, created.spec.replicas, bool(created.metadata.uid))
        patched = apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 3}})
        seen["patched"] = patched.spec.replicas
        for _ in range(10):  # as client-go's RetryOnConflict: the controller's status write may come between
            live = apps.read_namespaced_deployment("web", "default")
            live.metadata.labels = {"tier": "front"}
            try:
                replaced = apps.replace_namespaced_deployment("web", "default", live)
                break
            except kubernetes.client.ApiException as error:
                if error.status != 409:
                    raise
        seen["replaced"] = (replaced.metadata.labels, replaced.spec.replicas)
        live.spec.replicas = 1  # the resourceVersion is stale now
        try:
            apps.replace_namespaced_deployment("web", "default", live)
        except kubernetes.client.ApiException as error:
            seen["stale"] = (error.status, json.loads(error.body)["reason"])
        seen["scaled"] = apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 2}}
                                                                ).spec.replicas
        # Foreground: the Deployment is answered Terminating (v37 answers a dict), and goes after its pods
        deleted = apps.delete_namespaced_deployment("web", "default", propagation_policy="Foreground")
        meta = deleted["metadata"] if isinstance(deleted, dict) else deleted.metadata.to_dict()
        seen["deleted"] = (meta["finalizers"], bool(meta.get("deletionTimestamp") or meta.get("deletion_timestamp")))
        for _ in range(600):
            try:
                apps.read_namespaced_deployment("web", "default")
            except kubernetes.client.ApiException as error:
                seen["gone"] = error.status
                break
            time.sleep(0.1)
        return seen

    seen = await asyncio.to_thread(use_the_client)
    assert seen == {"created": ("web", 2, True), "patched": 3, "replaced": ({"tier": "front"}, 3),
                    "stale": (409, "Conflict"), "scaled": 2, "deleted": (["foregroundDeletion"], True), "gone": 404}
