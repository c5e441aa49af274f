"""Reaching the mesh from outside, end to end: `meshd agent --external 127.0.0.1`, its node sidecar, real containers
(busybox httpd, redis-server, dnsmasq), and clients nobody here wrote (curl, redis-cli, dig, kubectl, hey) on the
external address: LoadBalancer Services at their port, NodePort Services at their nodePort, a hostPort."""

from __future__ import annotations

import json
import random
import re
import shutil
import signal
import socket
import subprocess

import pytest

from tests.e2e.test_l4_mesh import MANIFEST as L4_MANIFEST
from tests.e2e.test_l4_mesh import _quiet, dig, redis_cli
from tests.e2e import load
from tests.e2e.test_mesh import Meshd, curl
from tests.integration.agent_harness import deployment_yaml, free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow,
              pytest.mark.skipif(not all(shutil.which(t) for t in ("curl", "hey", "redis-cli", "dig", "kubectl")),
                                 reason="needs curl, hey, redis-cli, dig and kubectl")]  # fmt: skip


L4_DEPLOYMENTS = "".join(f"{doc.strip()}\n---\n" for doc in L4_MANIFEST.split("---\n") if "kind: Deployment" in doc)


def free_node_port(udp: bool = False) -> int:
    """A port in the nodePort range that nothing on this host holds right now."""
    for _ in range(200):
        number = random.randint(30000, 32767)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", number))
            except OSError:
                continue
            return number
    raise OSError("no free port in 30000-32767")


def web(name: str, *, replicas: int = 2, version: str = "$(hostname)") -> str:
    command = f'["/bin/sh", "-c", "mkdir -p /www && echo {version} > /www/index.html && exec httpd -f -p 8080 -h /www"]'
    return deployment_yaml(name, replicas=replicas, image="meshd/busybox:latest", command=command, container="web",
                           rolling=True, readiness="/index.html")


def services(lb_port: int, node_port: int, redis_port: int) -> str:
    """LoadBalancer and NodePort Services for `web`, and for test_l4_mesh's redis and dnsmasq Deployments."""
    return L4_DEPLOYMENTS.removesuffix("---\n") + "".join((
        service("web-lb", "LoadBalancer", "web", f"{{name: http, port: {lb_port}, targetPort: http}}"),
        service("web-np", "NodePort", "web", f"{{name: http, port: 80, targetPort: http, nodePort: {node_port}}}")
        + "  externalTrafficPolicy: Local\n",
        service("redis-lb", "LoadBalancer", "redis", f"{{name: redis, port: {redis_port}, targetPort: redis, "
                "appProtocol: tcp}"),
        service("dns-np", "NodePort", "dns", "{name: dns, port: 53, targetPort: dns, protocol: UDP}"),
    ))


def service(name: str, kind: str, app: str, port: str) -> str:
    """One Service document (after a `---`): `port` is the flow-style YAML of its single port."""
    return f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: {kind}\n" \
           f"  selector: {{app: {app}}}\n  ports: [{port}]\n"  # fmt: skip


def kubectl(meshd: Meshd, kubeconfig: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--kubeconfig", kubeconfig, *args], capture_output=True, text=True,
                          timeout=60, env={**meshd.cli_env(), "HOME": str(meshd.state.parent)})  # fmt: skip


def node_port(meshd: Meshd, name: str) -> int:
    svc = meshd.until(lambda: meshd.get(f"/api/v1/namespaces/default/services/{name}"), what=f"service {name}")
    return int(svc["spec"]["ports"][0]["nodePort"])


def test_load_balancer_node_port_redis_and_udp_on_the_external_address(
        tmp_path, busybox_image, servers_image, pause_image):  # fmt: skip
    lb_port, redis_port, np_port = free_port(), free_port(), free_node_port()
    manifest = tmp_path / "external.yaml"
    manifest.write_text(web("web") + "---\n" + services(lb_port, np_port, redis_port))
    meshd = Meshd(tmp_path, "agent", "--external", "127.0.0.1").start()
    try:
        assert "created" in meshd.cli("apply", "-f", str(manifest))
        meshd.until(lambda: meshd.ready_endpoints("web-lb") == 2 and meshd.ready_endpoints("redis-lb") == 2
                    and meshd.ready_endpoints("dns-np") == 2, what="every replica ready")  # fmt: skip
        # curl to the LoadBalancer Service at its port, and to the NodePort Service at its nodePort
        answers = {meshd.until(lambda: curl(f"http://127.0.0.1:{lb_port}/"), what="the LoadBalancer port")
                   for _ in range(20)}  # fmt: skip
        assert len(answers) == 2 and all(a.startswith("web-") for a in answers), answers  # balanced per request
        assert meshd.until(lambda: curl(f"http://127.0.0.1:{np_port}/"), what="the nodePort").startswith("web-")
        # the LoadBalancer Service has a nodePort too, as in Kubernetes
        lb_node_port = node_port(meshd, "web-lb")
        assert 30000 <= lb_node_port <= 32767
        assert meshd.until(lambda: curl(f"http://127.0.0.1:{lb_node_port}/"), what="the LB's nodePort")
        # opaque TCP through a LoadBalancer: redis-cli
        assert meshd.until(lambda: _quiet(redis_cli, "127.0.0.1", redis_port, "ping") == "PONG", what="redis")
        assert redis_cli("127.0.0.1", redis_port, "set", "k", "v") == "OK"
        run_ids = {re.search(r"run_id:(\w+)", redis_cli("127.0.0.1", redis_port, "info", "server")).group(1)  # type: ignore[union-attr]
                   for _ in range(20)}  # fmt: skip
        assert len(run_ids) == 2, run_ids  # each connection to one replica; both serve
        # UDP through an allocated nodePort: dig to dnsmasq
        dns_port = node_port(meshd, "dns-np")
        answers = {meshd.until(lambda: dig("@127.0.0.1", "-p", str(dns_port), "a.x.test"), what="dig")
                   for _ in range(20)}  # each dnsmasq replica answers with its own address; flows are balanced
        assert len(answers) == 2 and all(re.fullmatch(r"[\d.]+", a) for a in answers), answers
        # kubectl get svc: EXTERNAL-IP and PORT(S) as Kubernetes prints them
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(meshd.cli("kubeconfig", "--state-dir", str(meshd.state), "--api", meshd.api))
        table = kubectl(meshd, str(kubeconfig), "get", "svc", "web-lb", "web-np", "dns-np")
        assert table.returncode == 0, table.stderr
        rows = {line.split()[0]: line.split() for line in table.stdout.splitlines()[1:]}
        assert rows["web-lb"][1:2] + rows["web-lb"][3:5] == ["LoadBalancer", "127.0.0.1", f"{lb_port}:{lb_node_port}/TCP"]
        assert rows["web-np"][3:5] == ["<none>", f"80:{np_port}/TCP"]
        assert rows["dns-np"][4] == f"53:{dns_port}/UDP"
        status = json.loads(kubectl(meshd, str(kubeconfig), "get", "svc", "web-lb", "-o", "json").stdout)["status"]
        assert status["loadBalancer"]["ingress"][0]["ip"] == "127.0.0.1"
        # re-applied (by kubectl, without the allocated nodePorts): each Service keeps the ones it has
        again = kubectl(meshd, str(kubeconfig), "apply", "-f", str(manifest))
        assert again.returncode == 0, again.stderr
        assert node_port(meshd, "web-lb") == lb_node_port and node_port(meshd, "dns-np") == dns_port
        # a nodePort another Service holds is refused with its field path, and nothing changes
        clash = tmp_path / "clash.yaml"
        clash.write_text(service("clash", "NodePort", "web", f"{{port: 81, targetPort: 8080, nodePort: {np_port}}}"))
        refused = kubectl(meshd, str(kubeconfig), "apply", "-f", str(clash))
        assert refused.returncode != 0
        assert f"spec.ports[0].nodePort: Invalid value: {np_port}: provided port is already allocated" in refused.stderr
        assert kubectl(meshd, str(kubeconfig), "get", "svc", "clash").returncode != 0
        assert curl(f"http://127.0.0.1:{np_port}/").startswith("web-")  # type: ignore[union-attr]
        # an agent restart keeps every allocated nodePort, and serves them again
        meshd.stop(signal.SIGTERM)
        meshd.start()
        assert node_port(meshd, "dns-np") == dns_port and node_port(meshd, "web-lb") == lb_node_port
        assert re.fullmatch(r"[\d.]+", meshd.until(lambda: dig("@127.0.0.1", "-p", str(dns_port), "b.x.test"),
                                                     what="dig after a restart"))
        assert meshd.until(lambda: curl(f"http://127.0.0.1:{lb_port}/"), what="the LB after a restart")
    finally:
        meshd.stop(signal.SIGINT)
        subprocess.run(["docker", "rm", "-f", *_containers(meshd)], capture_output=True)


def _containers(meshd: Meshd) -> list[str]:
    from tests.e2e.test_mesh import containers_of

    return containers_of(meshd.agent_id)


def test_a_rolling_update_behind_a_load_balancer_under_load_loses_no_request(tmp_path, busybox_image, pause_image):
    lb_port = free_port()
    lb = service("roll", "LoadBalancer", "roll", f"{{name: http, port: {lb_port}, targetPort: http}}")
    manifest = tmp_path / "roll.yaml"
    manifest.write_text(web("roll", replicas=3, version="v1") + lb)
    meshd = Meshd(tmp_path, "agent").start()  # --external defaults to 127.0.0.1
    try:
        meshd.cli("apply", "-f", str(manifest))
        url = f"http://127.0.0.1:{lb_port}/index.html"
        meshd.until(lambda: meshd.ready_endpoints("roll") == 3 and curl(url) == "v1", what="v1 serving")
        hey = load.start(url, "-disable-keepalive")
        manifest.write_text(web("roll", replicas=3, version="v2") + lb)
        meshd.cli("apply", "-f", str(manifest))
        meshd.until(lambda: {curl(url) for _ in range(6)} == {"v2"}, timeout=120, what="v2 everywhere")
        meshd.cli("rollout", "status", "deployment/roll", "--timeout", "120s")
        meshd.until(lambda: len(json.loads(meshd.cli("get", "pods", "-o", "json"))["items"]) == 3,
                    what="the old pods gone")  # the load lasts until then
        codes, output = load.stop(hey)
        print("hey through the LoadBalancer during the rollout:", codes, *re.findall(r"Requests/sec:.*", output))
        assert set(codes) == {"200"} and codes["200"] > 100, output
        assert "Error distribution" not in output, output
    finally:
        meshd.stop(signal.SIGINT)


def test_a_port_another_program_holds_is_an_event_and_is_served_once_it_is_free(tmp_path, busybox_image,
                                                                                 pause_image):  # fmt: skip
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    manifest = tmp_path / "held.yaml"
    manifest.write_text(web("web", replicas=1) + service("held", "LoadBalancer", "web",
                                                         f"{{name: http, port: {port}, targetPort: http}}"))
    meshd = Meshd(tmp_path, "agent").start()
    try:
        meshd.cli("apply", "-f", str(manifest))

        def event() -> str | None:
            events = (meshd.get("/api/v1/namespaces/default/events") or {}).get("items") or []
            return next((e["message"] for e in events if e["reason"] == "PortNotAvailable"
                         and e["involvedObject"]["name"] == "held"), None)  # fmt: skip

        message = meshd.until(event, what="a PortNotAvailable event on the Service")
        assert f"cannot listen on 127.0.0.1:{port}/TCP" in message and "in use" in message, message
        assert "PortNotAvailable" in meshd.cli("describe", "service", "held")
        holder.close()  # the other program goes: the sidecar takes the port on its next try
        assert meshd.until(lambda: curl(f"http://127.0.0.1:{port}/"), what="the port once free").startswith("web-")
    finally:
        holder.close()
        meshd.stop(signal.SIGINT)


def test_a_host_port_reaches_its_pod_and_a_second_pod_wanting_it_stays_pending(tmp_path, busybox_image,
                                                                                pause_image):  # fmt: skip
    host_port = free_port()
    manifest = tmp_path / "hostport.yaml"
    manifest.write_text(web("hp").replace("ports: [{containerPort: 8080, name: http}]",
                                          f"ports: [{{containerPort: 8080, name: http, hostPort: {host_port}}}]"))
    meshd = Meshd(tmp_path, "agent").start()
    try:
        meshd.cli("apply", "-f", str(manifest))

        def pods() -> list[dict]:
            return (meshd.get("/api/v1/namespaces/default/pods") or {}).get("items") or []

        def split() -> tuple[str, str] | None:
            running = [p for p in pods() if p["status"].get("phase") == "Running"]
            pending = [p for p in pods() if p["status"].get("phase") == "Pending"
                       and "didn't have free ports for the requested pod ports" in json.dumps(p["status"])]
            return (running[0]["metadata"]["name"], pending[0]["metadata"]["name"]) if running and pending else None

        first, second = meshd.until(split, what="one pod running, the other Pending for its hostPort")
        assert meshd.until(lambda: curl(f"http://127.0.0.1:{host_port}/"), what="the hostPort") == first
        assert {curl(f"http://127.0.0.1:{host_port}/") for _ in range(5)} == {first}  # that pod only
        meshd.cli("delete", "pod", first)  # the port frees: the Pending pod is scheduled and serves it
        assert meshd.until(lambda: curl(f"http://127.0.0.1:{host_port}/") == second and second,
                           timeout=90, what="the second pod on the hostPort")  # fmt: skip
    finally:
        meshd.stop(signal.SIGINT)


def test_grpc_through_a_load_balancer_is_balanced_per_call(tmp_path, grpc_image, pause_image):
    grpc = pytest.importorskip("grpc")
    from tests.e2e.test_mesh import ROOT

    lb_port = free_port()
    manifest = tmp_path / "grpc.yaml"
    manifest.write_text((ROOT / "examples" / "grpc-echo.yaml").read_text()
                        + service("echo-lb", "LoadBalancer", "echo", f"{{name: grpc, port: {lb_port}, targetPort: grpc}}"))
    # every host address: concrete ones, so the LoadBalancer's port stays apart from the same port on its ClusterIP
    meshd = Meshd(tmp_path, "up", "--external", "0.0.0.0", "-f", str(manifest)).start()
    try:
        meshd.until(lambda: meshd.ready_endpoints("echo-lb") == 3, what="3 ready endpoints (grpc probes)")
        with grpc.insecure_channel(f"127.0.0.1:{lb_port}") as channel:  # one HTTP/2 connection
            call = channel.unary_unary("/test.Echo/Unary")

            def answers() -> bytes | None:
                try:
                    return call(b"", timeout=5)
                except grpc.RpcError:
                    return None

            meshd.until(answers, what="a gRPC call on the external address")
            served = {call(b"", timeout=10) for _ in range(60)}
            assert len(served) == 3, served
        ingress = meshd.get("/api/v1/namespaces/default/services/echo-lb")["status"]["loadBalancer"]["ingress"]
        assert "127.0.0.1" in [i["ip"] for i in ingress] and "0.0.0.0" not in [i["ip"] for i in ingress], ingress
    finally:
        meshd.stop()
