"""HTTP/2 and gRPC through the HTTPS Ingress: `meshd up --driver process` with grpcio replicas
(examples/grpc-echo.yaml) and h2c replicas (bench/h2/h2c_backend.py), a kubernetes.io/tls Secret, and real
clients: a grpcio channel over TLS (ALPN h2, SNI), `curl --http2`; a host whose backend speaks HTTP/1 only is
offered http/1.1 by ALPN, so `curl --http2` still gets its answer."""

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
pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")]

MANIFESTS = textwrap.dedent("""\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: h2web}
    spec:
      replicas: 2
      selector: {matchLabels: {app: h2web}}
      template:
        metadata: {labels: {app: h2web}}
        spec:
          containers:
          - name: web
            image: meshd/python:3.11
            command: ["python3", "bench/h2/h2c_backend.py", "$(POD_NAME)", "$(POD_IP):8080"]
            env: [{name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
            ports: [{containerPort: 8080, name: web}]
            readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 0.5}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: h2web}
    spec:
      selector: {app: h2web}
      ports: [{name: web, port: 80, targetPort: web, appProtocol: kubernetes.io/h2c}]
    ---
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
            env: [{name: NAME, value: plain}, {name: PORT, value: "$(POD_IP)"}]
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
      - host: h2.example.com
        http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: h2web, port: {number: 80}}}}]}
      - host: plain.example.com
        http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: plain, port: {number: 80}}}}]}
    """)


def test_grpc_and_http2_through_the_https_ingress(tmp_path):
    https = free_port()
    cert, key, cafile = make_cert(tmp_path, "*.example.com", "edge")
    plain = ECHO.replace('("", 8080)', '(os.environ["PORT"], 8080)')
    manifests = tmp_path / "h2.yaml"
    manifests.write_text(MANIFESTS.replace("PLAIN", _yaml_string(plain)) + "---\n" + tls_secret("edge", cert, key))
    meshd = Meshd(tmp_path, "up", "--driver", "process", "--ingress-http", "off", "--ingress-https",
                  f"127.0.0.1:{https}", "-f", str(ROOT / "examples" / "grpc-echo.yaml"), "-f", str(manifests)).start()
    try:
        meshd.until(lambda: meshd.ready_endpoints("echo") == 3, what="3 ready grpc endpoints")
        meshd.until(lambda: meshd.ready_endpoints("h2web") == 2, what="2 ready h2c endpoints")
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

        def curl(host: str, path: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["curl", "-sS", "-m", "10", "--http2", "-w", "\n%{http_version}", "--resolve",
                 f"{host}:{https}:127.0.0.1", "--cacert", str(cafile), f"https://{host}:{https}{path}"],
                capture_output=True, text=True)

        answer = meshd.until(lambda: curl("h2.example.com", "/hello").stdout, what="curl --http2")
        body, version = answer.rsplit("\n", 1)
        assert version == "2" and body.startswith("h2web-") and "/hello" in body, answer
        body, version = curl("plain.example.com", "/x").stdout.rsplit("\n", 1)
        assert version == "1.1" and '"name": "plain"' in body and '"xfp": "https"' in body, body
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
