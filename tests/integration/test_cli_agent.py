"""The `meshd` CLI as a real process against a real agent (process driver, in this test's loop)."""

from __future__ import annotations

import json
import sys

import pytest

from tests.integration.agent_harness import agent_options, started_agent
from tests.integration.test_cli_fake_api import meshd

pytestmark = pytest.mark.slow

WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  progressDeadlineSeconds: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: python
        command: ["sh", "-c", "exec PYTHON -u -m http.server --bind $POD_IP 8080"]
        ports:
        - {containerPort: 8080, name: http}
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 0.2
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
""".replace("PYTHON", sys.executable)


@pytest.fixture
async def api(tmp_path, agent_id, monkeypatch):
    options = agent_options(tmp_path, agent_id, driver="process")
    agent = await started_agent(options)
    monkeypatch.setenv("MESHD_TOKEN", agent.token)  # what `meshd` finds first
    yield f"http://{options.api}"
    await agent.close(stop_pods=True)


async def test_apply_rollout_get_describe_logs_delete(api):
    code, out, err = await meshd(api, "apply", "-f", "-", stdin=WEB)
    assert (code, out) == (0, "deployment.apps/web created\nservice/web created\n"), err

    code, out, err = await meshd(api, "rollout", "status", "deployment/web", "--timeout", "60s")
    assert code == 0, err
    assert out.splitlines()[-1] == 'deployment "web" successfully rolled out'

    code, out, err = await meshd(api, "get", "pods", "-o", "json")
    pods = json.loads(out)["items"]
    assert len(pods) == 2
    assert all(p["status"]["containerStatuses"][0]["ready"] for p in pods)

    code, out, err = await meshd(
        api, "get", "endpoints", "web", "-o", "jsonpath={.subsets[*].addresses[*].ip}"
    )
    assert sorted(out.split()) == sorted(p["status"]["podIP"] for p in pods)

    code, out, err = await meshd(api, "get", "deploy")
    assert out.splitlines()[1].split()[:4] == ["web", "2/2", "2", "2"]

    name = pods[0]["metadata"]["name"]
    code, out, err = await meshd(api, "describe", "pod", name)
    assert code == 0, err
    assert "Readiness:" in out and "Ready:          True" in out

    code, out, err = await meshd(api, "logs", name)
    assert code == 0 and "Serving HTTP" in out, err

    # a template whose pods never become ready: the rollout fails at its deadline, the old pods keep serving
    broken = WEB.replace("path: /,", "path: /never-ready,")
    assert (await meshd(api, "apply", "-f", "-", stdin=broken))[0] == 0
    code, out, err = await meshd(api, "rollout", "status", "deployment/web", "--timeout", "60s")
    assert (code, err) == (1, 'error: deployment "web" exceeded its progress deadline\n')

    code, out, err = await meshd(api, "rollout", "undo", "deployment/web")
    assert (code, out) == (0, "deployment.apps/web rolled back\n"), err
    code, out, err = await meshd(api, "rollout", "status", "deployment/web", "--timeout", "60s")
    assert code == 0, err

    code, out, err = await meshd(api, "apply", "-f", "-", stdin=WEB.replace("replicas: 2", "replicas: three"))
    assert code == 1 and err.startswith("error: <stdin>: document 1 (Deployment web): spec.replicas"), err

    code, out, err = await meshd(api, "delete", "deployment", "web")
    assert (code, out) == (0, 'deployment.apps "web" deleted\n'), err


async def test_delete_f_deletes_what_exists_and_names_what_does_not(api, tmp_path):
    """kubectl's `delete -f`: a missing object does not stop the rest; each is reported, exit 1, and
    --ignore-not-found makes that quiet and successful."""
    services = "".join(f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec:\n"
                       f"  ports: [{{port: 80}}]\n" for i in range(3))
    path = tmp_path / "services.yaml"
    path.write_text(services)
    code, _, err = await meshd(api, "apply", "-f", str(path))
    assert code == 0, err
    code, out, err = await meshd(api, "delete", "service", "s0")
    assert code == 0, err
    code, out, err = await meshd(api, "delete", "-f", str(path))
    assert code == 1
    assert out == 'service "s1" deleted\nservice "s2" deleted\n'
    assert f'error when deleting "{path}": services "s0" not found' in err
    code, out, err = await meshd(api, "get", "services", "-o", "name")
    assert (code, out) == (0, "")
    code, out, err = await meshd(api, "delete", "-f", str(path), "--ignore-not-found")
    assert (code, out, err) == (0, "", "")
    code, out, err = await meshd(api, "delete", "service", "s9", "--ignore-not-found")
    assert (code, out, err) == (0, "", "")


async def test_applying_the_same_file_after_a_rollout_restart_changes_nothing(api):
    """As kubectl apply's merge keeps what `rollout restart` set: no second rollout, the same ReplicaSets."""
    assert (await meshd(api, "apply", "-f", "-", stdin=WEB))[0] == 0
    code, out, err = await meshd(api, "rollout", "restart", "deployment/web")
    assert code == 0, err
    code, out, err = await meshd(api, "rollout", "status", "deployment/web", "--timeout", "60s")
    assert code == 0, err
    code, before, err = await meshd(api, "get", "rs", "-o", "name")
    code, out, err = await meshd(api, "apply", "-f", "-", stdin=WEB)
    assert (code, out) == (0, "deployment.apps/web unchanged\nservice/web unchanged\n"), err
    assert (await meshd(api, "get", "rs", "-o", "name"))[1] == before
    code, out, err = await meshd(api, "apply", "-f", "-", stdin=WEB.replace("replicas: 2", "replicas: 1"))
    assert (code, out) == (0, "deployment.apps/web configured\nservice/web unchanged\n"), err
    assert (await meshd(api, "get", "rs", "-o", "name"))[1] == before  # a scale: still no new template


async def test_a_scale_survives_applying_a_manifest_that_names_no_replicas(api):
    """kubectl apply keeps a live replica count the manifest leaves out (how autoscaled workloads are applied)."""
    no_replicas = WEB.replace("  replicas: 2\n", "")
    assert no_replicas != WEB
    assert (await meshd(api, "apply", "-f", "-", stdin=no_replicas))[0] == 0
    code, out, err = await meshd(api, "scale", "deployment/web", "--replicas", "3")
    assert code == 0, err
    code, out, err = await meshd(api, "apply", "-f", "-", stdin=no_replicas)
    assert (code, out) == (0, "deployment.apps/web unchanged\nservice/web unchanged\n"), err
    code, out, err = await meshd(api, "get", "deployment", "web", "-o", "jsonpath={.spec.replicas}")
    assert (code, out.strip()) == (0, "3"), err
