"""HTTP/2 and gRPC through the HTTPS Ingress: `meshd up` on the Docker engine with grpcio replicas in containers
(examples/grpc-echo.yaml) and an HTTP/1 backend, a kubernetes.io/tls Secret, and real clients: a grpcio channel
over TLS (ALPN h2, SNI), `curl --http2` making a gRPC call; a host whose backend speaks HTTP/1 only is offered
http/1.1 by ALPN, so `curl --http2` still gets its answer."""

from __future__ import annotations

import collections
import shutil
import subprocess
import textwrap

import pytest

from tests.e2e.test_ingress import ECHO, make_cert, tls_secret
from tests.e2e.test_mesh import ROOT, Meshd
from tests.integration.agent_harness import free_port

grpc = pytest.importorskip("grpc")
pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")]

MANIFESTS = textwrap.dedent("""\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: plain}
    spec:
      replicas: 1
      selector: {matchLabels: {app: plain}}
      template:
        metadata: {labels: {app: plain}}
        spec:
          containers:
          - name: web
            image: meshd/python:3.11
            command: ["python3", "-c", PLAIN]
            env: [{name: NAME, value: plain}]
            ports: [{containerPort: 8080, name: http}]
            readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 0.5}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: plain}
    spec:
      selector: {app: plain}
      ports: [{name: http, port: 80, targetPort: http}]
    ---
    apiVersion: networking.k8s.io/v1
    kind: Ingress
    metadata: {name: h2}
    spec:
      tls: [{secretName: edge}]
      rules:
      - host: grpc.example.com
        http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: echo, port: {name: grpc}}}}]}
      - host: plain.example.com
        http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: plain, port: {number: 80}}}}]}
    """)


def test_grpc_and_http2_through_the_https_ingress(tmp_path, grpc_image, python_image, pause_image):
    https = free_port()
    cert, key, cafile = make_cert(tmp_path, "*.example.com", "edge")
    plain = ECHO
    manifests = tmp_path / "h2.yaml"
    manifests.write_text(MANIFESTS.replace("PLAIN", _yaml_string(plain)) + "---\n" + tls_secret("edge", cert, key))
    meshd = Meshd(tmp_path, "up", "--ingress-http", "off", "--ingress-https",
                  f"127.0.0.1:{https}", "-f", str(ROOT / "examples" / "grpc-echo.yaml"), "-f", str(manifests)).start()
    try:
        meshd.until(lambda: meshd.ready_endpoints("echo") == 3, what="3 ready grpc endpoints")
        meshd.until(lambda: meshd.ready_endpoints("plain") == 1, what="the HTTP/1 endpoint")
        credentials = grpc.ssl_channel_credentials(root_certificates=cafile.read_bytes())
        options = [("grpc.ssl_target_name_override", "grpc.example.com"),
                   ("grpc.default_authority", "grpc.example.com")]
        with grpc.secure_channel(f"127.0.0.1:{https}", credentials, options=options) as channel:
            call = channel.unary_unary("/test.Echo/Unary")
            meshd.until(lambda: _answers(call), what="a gRPC call through the Ingress")
            served = collections.Counter(call(b"", timeout=10) for _ in range(30))
            assert sum(served.values()) == 30 and len(served) == 3, served  # balanced per call
            assert channel.unary_unary("/test.Echo/Echo")(b"x" * 100_000, timeout=10) == b"x" * 100_000

        def curl(host: str, path: str, *args: str) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(
                ["curl", "-sS", "-m", "10", "--http2", "-w", "\n%{http_version}", *args, "--resolve",
                 f"{host}:{https}:127.0.0.1", "--cacert", str(cafile), f"https://{host}:{https}{path}"],
                capture_output=True)

        # a gRPC call by curl: POST, content-type application/grpc, an empty message (5-byte frame header)
        grpc_call = ("-X", "POST", "-H", "content-type: application/grpc", "-H", "te: trailers",
                     "--data-binary", "@" + str(tmp_path / "empty.bin"))
        (tmp_path / "empty.bin").write_bytes(b"\x00\x00\x00\x00\x00")
        answer = curl("grpc.example.com", "/test.Echo/Unary", *grpc_call).stdout
        body, version = answer.rsplit(b"\n", 1)
        assert version == b"2" and b"echo-" in body, answer  # a gRPC frame holding the replica's name
        body, version = curl("plain.example.com", "/x").stdout.rsplit(b"\n", 1)
        assert version == b"1.1" and b'"name": "plain"' in body and b'"xfp": "https"' in body, body
    finally:
        meshd.stop()


def _yaml_string(text: str) -> str:
    import json

    return json.dumps(text)


def _answers(call) -> bool:  # type: ignore[no-untyped-def]
    try:
        return bool(call(b"", timeout=2))
    except grpc.RpcError:
        return False
