"""Server-side apply with field managers, the real kubectl (v1.37) and the Python client against a real agent
(process driver): two managers on one field conflict (409, Kubernetes' message and causes) until
--force-conflicts takes it over; a field its applier stops applying goes unless another manager owns it;
client-side apply, edit-style updates and scale record their Update managers."""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp
import pytest
import yaml

from tests.integration import test_kubectl
from tests.integration.test_kubectl import Cluster
from tests.integration.test_kubectl_writes import get_json, write

cluster = test_kubectl.cluster

pytestmark = [pytest.mark.slow]

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ssa
  labels: {app: ssa}
spec:
  replicas: 1
  selector:
    matchLabels: {app: ssa}
  template:
    metadata:
      labels: {app: ssa}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: python
        command: ["PYTHON", "-c", "import time; time.sleep(3600)"]
        env:
        - {name: KEEP, value: "1"}
""".replace("PYTHON", sys.executable)


def managers(obj: dict) -> dict[tuple[str, str], dict]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields") or []}


async def ssa(cluster: Cluster, manager: str, text: str, *extra: str) -> tuple[int, str, str]:
    path = await write(cluster, f"{manager}.yaml", text)
    return await cluster.kubectl("apply", "--server-side", f"--field-manager={manager}", "-f", path, *extra)


async def test_two_managers_conflict_on_replicas_and_force_takes_it_over(cluster):
    code, out, err = await ssa(cluster, "alice", DEPLOY)
    assert (code, out.strip()) == (0, "deployment.apps/ssa serverside-applied"), err
    deploy = await get_json(cluster, "deploy", "ssa", "--show-managed-fields")
    alice = managers(deploy)[("alice", "Apply")]
    assert alice["apiVersion"] == "apps/v1" and alice["fieldsType"] == "FieldsV1"
    fields = alice["fieldsV1"]
    assert fields["f:spec"]["f:replicas"] == {} and fields["f:spec"]["f:selector"] == {}
    container = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"main"}']
    assert container["."] == {} and container["f:env"]['k:{"name":"KEEP"}']["f:value"] == {}

    code, out, err = await ssa(cluster, "bob", DEPLOY.replace("replicas: 1", "replicas: 2"))
    assert code == 1, (out, err)
    assert 'Apply failed with 1 conflict: conflict with "alice": .spec.replicas' in err, err
    assert (await get_json(cluster, "deploy", "ssa"))["spec"]["replicas"] == 1  # nothing changed

    # the Status, as a client library sees it
    body = DEPLOY.replace("replicas: 1", "replicas: 2")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {cluster.token()}"}) as http:
        async with http.patch(f"{cluster.api}/apis/apps/v1/namespaces/default/deployments/ssa?fieldManager=bob",
                              data=body, headers={"Content-Type": "application/apply-patch+yaml"}) as response:
            status = await response.json()
            assert response.status == 409
        async with http.patch(f"{cluster.api}/apis/apps/v1/namespaces/default/deployments/ssa",
                              data=body, headers={"Content-Type": "application/apply-patch+yaml"}) as response:
            missing = await response.json()
            assert response.status == 400 and "fieldManager" in missing["message"], missing
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "Conflict", 409)
    assert status["details"]["causes"] == [{"type": "FieldManagerConflict", "message": 'conflict with "alice"',
                                            "field": ".spec.replicas"}]
    assert status["details"]["kind"] == "deployments" and status["details"]["group"] == "apps"

    code, out, err = await ssa(cluster, "bob", DEPLOY.replace("replicas: 1", "replicas: 2"), "--force-conflicts")
    assert (code, out.strip()) == (0, "deployment.apps/ssa serverside-applied"), err
    deploy = await get_json(cluster, "deploy", "ssa", "--show-managed-fields")
    assert deploy["spec"]["replicas"] == 2
    owners = managers(deploy)
    assert "f:replicas" in owners[("bob", "Apply")]["fieldsV1"]["f:spec"]
    assert "f:replicas" not in owners[("alice", "Apply")]["fieldsV1"]["f:spec"]  # taken over
    assert "f:selector" in owners[("alice", "Apply")]["fieldsV1"]["f:spec"]  # shared: same value

    # alice may now set what she still owns, and leaves replicas alone
    code, out, err = await ssa(cluster, "alice", DEPLOY.replace("  replicas: 1\n", ""))
    assert code == 0, err
    assert (await get_json(cluster, "deploy", "ssa"))["spec"]["replicas"] == 2  # bob's


async def test_a_field_its_only_manager_stops_applying_is_removed(cluster):
    with_extra = DEPLOY.replace('- {name: KEEP, value: "1"}', '- {name: KEEP, value: "1"}\n        - {name: GONE, '
                                                                 'value: "2"}').replace("labels: {app: ssa}\nspec",
                                                                                        "labels: {app: ssa, tier: z}\nspec")
    code, out, err = await ssa(cluster, "alice", with_extra)
    assert code == 0, err
    assert (await ssa(cluster, "carol", """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: ssa, labels: {tier: z}}
"""))[0] == 0  # carol co-owns the label tier
    code, out, err = await ssa(cluster, "alice", DEPLOY)  # no GONE, no label tier
    assert code == 0, err
    deploy = await get_json(cluster, "deploy", "ssa")
    env = deploy["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "KEEP", "value": "1"}]  # alice alone owned GONE: removed
    assert deploy["metadata"]["labels"] == {"app": "ssa", "tier": "z"}  # carol still owns tier: kept


async def test_client_side_apply_scale_and_edit_record_update_managers(cluster):
    path = await write(cluster, "csa.yaml", DEPLOY)
    code, out, err = await cluster.kubectl("apply", "-f", path)
    assert code == 0, err
    deploy = await get_json(cluster, "deploy", "ssa", "--show-managed-fields")
    csa = managers(deploy)[("kubectl-client-side-apply", "Update")]
    assert csa["fieldsV1"]["f:spec"]["f:replicas"] == {}

    code, out, err = await ssa(cluster, "dave", DEPLOY.replace("replicas: 1", "replicas: 2"))
    assert code == 1 and ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: '
                          '.spec.replicas') in err, err

    code, out, err = await cluster.kubectl("scale", "deploy", "ssa", "--replicas=0")
    assert code == 0, err
    deploy = await get_json(cluster, "deploy", "ssa", "--show-managed-fields")
    scaler = [e for e in deploy["metadata"]["managedFields"] if e.get("subresource") == "scale"]
    assert len(scaler) == 1 and scaler[0]["operation"] == "Update", deploy["metadata"]["managedFields"]
    assert scaler[0]["manager"] == "kubectl"  # kubectl scale names none: the User-Agent's product, as Kubernetes
    assert scaler[0]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in managers(deploy)[("kubectl-client-side-apply", "Update")]["fieldsV1"]["f:spec"]

    code, out, err = await cluster.kubectl("label", "deploy", "ssa", "tier=web")
    assert code == 0, err
    deploy = await get_json(cluster, "deploy", "ssa", "--show-managed-fields")
    labeller = [e for e in deploy["metadata"]["managedFields"] if e["manager"] not in (
        "kubectl-client-side-apply", scaler[0]["manager"])]
    assert [e["fieldsV1"] for e in labeller] == [{"f:metadata": {"f:labels": {"f:tier": {}}}}], labeller


async def test_kubectl_upgrades_a_client_side_applied_object_to_server_side_apply(cluster):
    """kubectl's own manager takes over what `kubectl apply` (client-side) owned: it rewrites managedFields
    with a JSON patch before its first server-side apply, which the server takes as given."""
    code, out, err = await cluster.kubectl("apply", "-f", await write(cluster, "csa.yaml", DEPLOY))
    assert code == 0, err
    code, out, err = await cluster.kubectl("apply", "--server-side", "-f", await write(
        cluster, "upgraded.yaml", DEPLOY.replace("replicas: 1", "replicas: 0")))
    assert (code, out.strip()) == (0, "deployment.apps/ssa serverside-applied"), err
    deploy = await get_json(cluster, "deploy", "ssa", "--show-managed-fields")
    assert deploy["spec"]["replicas"] == 0
    owners = managers(deploy)
    assert "f:replicas" in owners[("kubectl", "Apply")]["fieldsV1"]["f:spec"], owners
    assert "f:replicas" not in owners.get(("kubectl-client-side-apply", "Update"), {}).get("fieldsV1", {}).get(
        "f:spec", {})


async def test_the_python_client_applies_server_side_and_sees_the_conflict(cluster):
    kubernetes = pytest.importorskip("kubernetes")
    manifest = yaml.safe_load(DEPLOY)

    def use_the_client() -> dict:
        client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        apps = kubernetes.client.AppsV1Api(client)
        seen: dict = {}

        def apply(manager: str, replicas: int, force: bool = False):
            body = {**manifest, "spec": {**manifest["spec"], "replicas": replicas}}
            return apps.patch_namespaced_deployment("ssa", "default", body, field_manager=manager, force=force,
                                                    _content_type="application/apply-patch+yaml")

        created = apply("erin", 1)
        seen["created"] = [(m.manager, m.operation) for m in created.metadata.managed_fields]
        try:
            apply("frank", 0)
        except kubernetes.client.ApiException as error:
            body = json.loads(error.body)
            seen["conflict"] = (error.status, body["reason"], body["message"], body["details"]["causes"])
        forced = apply("frank", 0, force=True)
        seen["forced"] = (forced.spec.replicas, sorted((m.manager, m.operation) for m in forced.metadata.managed_fields))
        return seen

    seen = await asyncio.to_thread(use_the_client)
    assert seen["created"] == [("erin", "Apply")]
    assert seen["conflict"] == (409, "Conflict", 'Apply failed with 1 conflict: conflict with "erin": .spec.replicas',
                                [{"type": "FieldManagerConflict", "message": 'conflict with "erin"',
                                  "field": ".spec.replicas"}])
    assert seen["forced"] == (0, [("erin", "Apply"), ("frank", "Apply")])


POD = """\
apiVersion: v1
kind: Pod
metadata: {name: lone, labels: {team: a}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: main, image: python, command: ["PYTHON", "-c", "import time; time.sleep(3600)"]}
""".replace("PYTHON", sys.executable)


async def test_a_pod_and_a_configmap_keep_their_managers(cluster):
    assert (await ssa(cluster, "alice", POD))[0] == 0
    code, out, err = await ssa(cluster, "bob", POD.replace("team: a", "team: b"))
    assert code == 1 and 'conflict with "alice": .metadata.labels.team' in err, err
    pod = await get_json(cluster, "pod", "lone", "--show-managed-fields")
    assert [(e["manager"], e["operation"]) for e in pod["metadata"]["managedFields"]] == [("alice", "Apply")]

    config = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: '1', b: '2'}\n"
    assert (await ssa(cluster, "alice", config))[0] == 0
    assert (await ssa(cluster, "alice", config.replace(", b: '2'", "")))[0] == 0
    assert (await get_json(cluster, "cm", "settings"))["data"] == {"a": "1"}  # b: no longer applied, removed


async def test_concurrent_applies_of_different_fields_all_land_with_their_managers(cluster):
    """A patch computed from an object that changed before it was written is computed again (as the API
    server retries), so no applier's field nor its ownership is lost."""
    assert (await ssa(cluster, "base", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: many}\ndata: {x: '0'}\n"))[0] == 0
    url = f"{cluster.api}/api/v1/namespaces/default/configmaps/many"

    async def one(http: aiohttp.ClientSession, n: int) -> int:
        body = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: many}}\ndata: {{k{n}: 'v{n}'}}\n"
        async with http.patch(url, params={"fieldManager": f"m{n}"}, data=body,
                              headers={"Content-Type": "application/apply-patch+yaml"}) as response:
            return response.status

    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {cluster.token()}"}) as http:
        codes = await asyncio.gather(*(one(http, n) for n in range(8)))
    assert codes == [200] * 8
    config = await get_json(cluster, "cm", "many", "--show-managed-fields")
    assert config["data"] == {"x": "0", **{f"k{n}": f"v{n}" for n in range(8)}}
    assert sorted(e["manager"] for e in config["metadata"]["managedFields"]) == ["base", *(f"m{n}" for n in range(8))]
