"""v1 ConfigMap and v1 Secret through the real kubectl and the `meshd` CLI against a real agent (process driver):
apply, get (kubectl's columns), -o json, describe (a Secret's values never shown), patch, immutable, delete; bad
input refused with the field path, changing nothing; the store file readable by its owner only."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
from pathlib import Path

import pytest

from tests.integration import test_kubectl
from tests.integration.test_cli_fake_api import meshd

cluster = test_kubectl.cluster

pytestmark = [pytest.mark.slow]

SECRET_VALUE = "s3cr3t-Value-9f2c"
CONFIG = f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: app-config}}
data:
  app.properties: "colour=blue\\n"
  mode: fast
binaryData:
  blob.bin: AAEC
---
apiVersion: v1
kind: Secret
metadata: {{name: db}}
type: kubernetes.io/basic-auth
data:
  username: {base64.b64encode(b"admin").decode()}
stringData:
  password: {SECRET_VALUE}
---
apiVersion: v1
kind: Secret
metadata: {{name: tls}}
type: kubernetes.io/tls
data:
  tls.crt: {base64.b64encode(b"CERT").decode()}
  tls.key: {base64.b64encode(b"KEY").decode()}
"""


async def test_configmaps_and_secrets_through_kubectl(cluster, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    code, out, err = await cluster.kubectl("apply", "-f", str(path))
    assert code == 0, err
    assert sorted(out.split("\n")[:-1]) == ["configmap/app-config created", "secret/db created",
                                            "secret/tls created"], out

    code, out, err = await cluster.kubectl("get", "cm,secret")
    assert code == 0, err
    rows = [line.split() for line in out.splitlines() if line.strip()]
    assert rows[0] == ["NAME", "DATA", "AGE"]
    assert rows[1][:2] == ["configmap/app-config", "3"]
    assert ["NAME", "TYPE", "DATA", "AGE"] in rows
    assert ["secret/db", "kubernetes.io/basic-auth", "2"] == next(r[:3] for r in rows if r[0] == "secret/db")
    assert ["secret/tls", "kubernetes.io/tls", "2"] == next(r[:3] for r in rows if r[0] == "secret/tls")

    code, out, err = await cluster.kubectl("get", "secret", "db", "-o", "json")
    secret = json.loads(out)
    assert "stringData" not in secret  # merged into data as the API server stores it
    assert base64.b64decode(secret["data"]["password"]).decode() == SECRET_VALUE
    assert secret["metadata"]["uid"] and secret["metadata"]["resourceVersion"]

    code, out, err = await cluster.kubectl("describe", "secret", "db")
    assert code == 0, err
    assert SECRET_VALUE not in out and "password:  17 bytes" in out, out
    code, out, err = await cluster.kubectl("get", "events", "-o", "json")
    assert SECRET_VALUE not in out and base64.b64encode(SECRET_VALUE.encode()).decode() not in out

    code, out, err = await meshd(cluster.api, "get", "cm")
    assert code == 0 and out.split()[:4] == ["NAME", "DATA", "AGE", "app-config"], (out, err)
    code, out, err = await meshd(cluster.api, "describe", "secret", "db")
    assert code == 0 and "password:  17 bytes" in out and "Type:  kubernetes.io/basic-auth" in out, (out, err)
    assert SECRET_VALUE not in out and base64.b64encode(SECRET_VALUE.encode()).decode() not in out
    code, out, err = await meshd(cluster.api, "describe", "cm", "app-config")
    assert code == 0 and "mode:\n----\nfast" in out and "blob.bin: 3 bytes" in out, (out, err)

    code, out, err = await cluster.kubectl("patch", "cm", "app-config", "-p", '{"data":{"mode":"slow"}}')
    assert code == 0, err
    code, out, err = await cluster.kubectl("get", "cm", "app-config", "-o", "jsonpath={.data.mode}")
    assert out == "slow"

    # the store holding Secrets is readable by its owner only
    store = next(Path(p) for p in _state_files(cluster) if p.endswith("store.db"))
    assert stat.S_IMODE(store.stat().st_mode) == 0o600


def _state_files(cluster) -> list[str]:
    return [os.path.join(root, f) for root, _, files in os.walk(cluster.cache) for f in files]


BAD = [
    ("data: {password: '@@not-base64'}", "data.password", "illegal base64 data"),
    ("data: {'a/b': eA==}", "data[a/b]", "invalid key"),
    ("stringData: {port: 5432}", "stringData.port", "expected a string"),
    ("type: kubernetes.io/tls\nstringData: {tls.crt: x}", "data[tls.key]", "required for a kubernetes.io/tls"),
    ("type: kubernetes.io/dockerconfigjson\nstringData: {.dockerconfigjson: '{'}", "data[.dockerconfigjson]",
     "invalid JSON"),
    ("type: kubernetes.io/tls\nstringData: {tls.crt: x, tls.key: z}", "type", "field is immutable"),
]


@pytest.mark.parametrize(("body", "field", "message"), BAD)
async def test_bad_secrets_are_refused_with_the_field_path_and_change_nothing(cluster, tmp_path, body, field,
                                                                               message):
    good = tmp_path / "good.yaml"
    good.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: old}\n")
    code, _, err = await cluster.kubectl("apply", "-f", str(good))
    assert code == 0, err
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\n{body}\n")
    code, out, err = await cluster.kubectl("apply", "-f", str(bad))
    assert code != 0 and field in err and message in err, err
    assert "@@not-base64" not in err and "5432" not in err  # values are never echoed
    code, out, err = await cluster.kubectl("get", "secret", "s", "-o", "json")
    assert json.loads(out)["data"] == {"password": base64.b64encode(b"old").decode()}


async def test_an_immutable_configmap_refuses_changes(cluster, tmp_path):
    path = tmp_path / "cm.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\nimmutable: true\ndata: {a: '1'}\n")
    code, _, err = await cluster.kubectl("apply", "-f", str(path))
    assert code == 0, err
    code, _, err = await cluster.kubectl("patch", "cm", "frozen", "-p", '{"data":{"a":"2"}}')
    assert code != 0 and "field is immutable when `immutable` is set" in err, err
    code, out, _ = await cluster.kubectl("get", "cm", "frozen", "-o", "jsonpath={.data.a}")
    assert out == "1"
    code, out, err = await cluster.kubectl("delete", "cm", "frozen")
    assert code == 0, err


PROCESS_POD = """\
apiVersion: v1
kind: Pod
metadata: {name: reader}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: reader
    image: python
    command: ["sh", "-c", "exec sleep 3600"]
    env:
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: db, key: password}}
    volumeMounts:
    - {name: cfg, mountPath: /etc/cfg}
  volumes:
  - {name: cfg, configMap: {name: app-config, items: [{key: mode, path: mode.txt}]}}
"""


async def test_a_process_pod_reads_its_config_volume_from_the_path_in_its_env(cluster, tmp_path):
    path = tmp_path / "all.yaml"
    path.write_text(CONFIG + "---\n" + PROCESS_POD)
    code, _, err = await cluster.kubectl("apply", "-f", str(path))
    assert code == 0, err
    code, out, err = await cluster.kubectl("wait", "--for=condition=Ready", "pod/reader", "--timeout=60s")
    assert code == 0, (out, err)
    code, out, err = await cluster.kubectl("exec", "reader", "--", "sh", "-c",
                                           'cat "$MESHD_VOLUME_CFG/mode.txt"; echo " $PASSWORD"')
    assert (code, out) == (0, f"fast {SECRET_VALUE}\n"), (out, err)
    volume_dir = Path(out and (await cluster.kubectl("exec", "reader", "--", "sh", "-c",
                                                     'echo -n "$MESHD_VOLUME_CFG"'))[1])
    assert stat.S_IMODE(volume_dir.parent.parent.stat().st_mode) == 0o700  # STATE/pod-volumes: the agent's only
    records = [p for p in _state_files(cluster) if "/records/" in p]
    assert records and all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in records)  # they keep the env
    code, _, err = await cluster.kubectl("delete", "pod", "reader")
    assert code == 0, err
    for _ in range(300):  # the files go with the pod's teardown
        if not volume_dir.exists():
            break
        await asyncio.sleep(0.1)
    assert not volume_dir.exists()


async def test_the_python_client_creates_reads_and_watches_configmaps_and_secrets(cluster):
    kubernetes = pytest.importorskip("kubernetes")

    def use_the_client() -> dict:
        api = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(
            config_file=str(cluster.kubeconfig)))
        seen: dict = {}
        api.create_namespaced_config_map("default", {"metadata": {"name": "w"}, "data": {"k": "1"}})
        api.create_namespaced_secret("default", {"metadata": {"name": "t"}, "type": "kubernetes.io/tls",
                                                 "stringData": {"tls.crt": "C", "tls.key": "K"}})
        seen["secret"] = api.read_namespaced_secret("t", "default").data
        watch = kubernetes.watch.Watch()
        events = []
        for event in watch.stream(api.list_namespaced_config_map, "default", timeout_seconds=60):
            events.append((event["type"], event["object"].metadata.name, (event["object"].data or {}).get("k")))
            if len(events) == 1:
                api.patch_namespaced_config_map("w", "default", {"data": {"k": "2"}})
            elif len(events) == 2:
                api.delete_namespaced_config_map("w", "default")
            else:
                watch.stop()
        seen["events"] = events
        try:
            api.create_namespaced_secret("default", {"metadata": {"name": "b"}, "data": {"x": "not base64!"}})
        except kubernetes.client.ApiException as error:
            seen["bad"] = (error.status, json.loads(error.body)["details"]["causes"][0]["field"])
        return seen

    seen = await asyncio.to_thread(use_the_client)
    assert seen["secret"] == {"tls.crt": "Qw==", "tls.key": "Sw=="}
    assert seen["events"] == [("ADDED", "w", "1"), ("MODIFIED", "w", "2"), ("DELETED", "w", "2")]
    assert seen["bad"] == (422, "data.x")


async def test_kubectl_create_secret_and_configmap_generators(cluster, tmp_path):
    (tmp_path / "app.properties").write_text("colour=blue\n")
    for args in (("create", "configmap", "props", f"--from-file={tmp_path / 'app.properties'}", "--from-literal=x=1"),
                 ("create", "secret", "generic", "gen", "--from-literal=password=p4ss"),
                 ("create", "secret", "docker-registry", "reg", "--docker-server=127.0.0.1:5000",
                  "--docker-username=u", "--docker-password=p4ss"),
                 ("create", "secret", "tls", "cert", f"--cert={tmp_path / 'c.pem'}", f"--key={tmp_path / 'k.pem'}")):
        if args[2] == "tls":
            key = tmp_path / "k.pem"
            proc = await asyncio.create_subprocess_exec(
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=x", "-days", "1",
                "-keyout", str(key), "-out", str(tmp_path / "c.pem"), stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL)
            assert await proc.wait() == 0
        code, out, err = await cluster.kubectl(*args)
        assert code == 0, (args, err)
    code, out, err = await cluster.kubectl("get", "secret", "--no-headers")
    rows = sorted(line.split()[:3] for line in out.splitlines())
    assert rows == [["cert", "kubernetes.io/tls", "2"], ["gen", "Opaque", "1"],
                    ["reg", "kubernetes.io/dockerconfigjson", "1"]], out
    code, out, err = await cluster.kubectl("get", "cm", "props", "-o", "jsonpath={.data.app\\.properties}")
    assert out == "colour=blue\n", (out, err)
