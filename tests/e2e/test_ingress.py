"""Ingress end to end: the agent (Docker engine, real containers), its node sidecar (a real process) serving the
Ingress on free high ports, and clients nobody here wrote: curl (Host routing, --resolve --cacert over HTTPS with
SNI), openssl s_client (the rotated certificate), kubectl (get ing), hey (a rolling update under load)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.e2e import load
from tests.integration.agent_harness import (agent_options, deployment_yaml, eventually, free_port, pods, service_yaml,
                                            started_agent)

pytestmark = [pytest.mark.docker, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")]

# a backend that says who it is and what it got (path and forwarding headers), for any path
ECHO = textwrap.dedent("""\
    import http.server, json, os
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_GET(self):
            h = self.headers
            body = json.dumps({"name": os.environ["NAME"], "path": self.path, "xfp": h.get("X-Forwarded-Proto"),
                               "xfh": h.get("X-Forwarded-Host"), "xff": h.get("X-Forwarded-For"),
                               "fwd": h.get("Forwarded")}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    http.server.ThreadingHTTPServer(("", 8080), H).serve_forever()
""")


def backend(name: str, *, replicas: int = 1, version: str = "v1") -> str:
    command = json.dumps(["python3", "-c", ECHO])
    env = f"[{{name: NAME, value: {name}}}, {{name: VERSION, value: {version}}}]"
    return deployment_yaml(name, replicas=replicas, image="meshd/python:3.11", command=command, container="web",
                           grace=3, rolling=True, env=env, readiness="/") + service_yaml(name)


ROUTES = textwrap.dedent("""\
    apiVersion: networking.k8s.io/v1
    kind: Ingress
    metadata: {name: site}
    spec:
      ingressClassName: meshd
      defaultBackend: {service: {name: ing-a, port: {number: 80}}}
      rules:
      - host: a.example.com
        http:
          paths:
          - {path: /, pathType: Prefix, backend: {service: {name: ing-a, port: {name: http}}}}
          - {path: /b, pathType: Prefix, backend: {service: {name: ing-b, port: {number: 80}}}}
          - {path: /b/exact, pathType: Exact, backend: {service: {name: ing-a, port: {number: 80}}}}
      - host: "*.example.com"
        http:
          paths:
          - {path: /, pathType: Prefix, backend: {service: {name: ing-b, port: {number: 80}}}}
      - host: ghost.example.com
        http:
          paths:
          - {path: /, pathType: Prefix, backend: {service: {name: ghost, port: {number: 80}}}}
          - {path: /port, pathType: Prefix, backend: {service: {name: ing-a, port: {number: 9999}}}}
    """)
LATE = textwrap.dedent("""\
    apiVersion: networking.k8s.io/v1
    kind: Ingress
    metadata: {name: late}
    spec:
      rules:
      - host: a.example.com
        http:
          paths:
          - {path: /b, pathType: Prefix, backend: {service: {name: ing-a, port: {number: 80}}}}
    """)
OTHER_CLASS = textwrap.dedent("""\
    apiVersion: networking.k8s.io/v1
    kind: Ingress
    metadata: {name: nginx-one}
    spec:
      ingressClassName: nginx
      rules:
      - host: n.other.test
        http:
          paths:
          - {path: /, pathType: Prefix, backend: {service: {name: ing-b, port: {number: 80}}}}
    """)


@pytest.fixture
async def agent(tmp_path, agent_id, python_image, pause_image):
    http, https = free_port(), free_port()
    agent = await started_agent(agent_options(
        tmp_path, agent_id, sidecar=True, sidecar_metrics=f"127.0.0.1:{free_port()}",
        ingress_http=f"127.0.0.1:{http}", ingress_https=f"127.0.0.1:{https}"))
    agent.test_ports = (http, https)  # type: ignore[attr-defined]
    yield agent
    await agent.close(stop_pods=True)


async def until(check, *, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    """Poll an async (or plain) check until it gives something truthy; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"not true within {timeout}s: {check}")
        await asyncio.sleep(0.2)


def curl(*args: str) -> tuple[int, str, str]:
    """(HTTP status, body, headers) of one curl call."""
    done = subprocess.run(["curl", "-sS", "-m", "10", "-D", "-", "-o", "-", "-w", "\n%{http_code}", *args],
                          capture_output=True, text=True)
    *rest, code = done.stdout.rsplit("\n", 1)
    head, _, body = (rest[0] if rest else "").partition("\n\n")  # (text mode: CRLF read as LF)
    return int(code or 0), body, head


async def acurl(*args: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(curl, *args)


async def served_by(port: int, host: str, path: str) -> str | None:
    status, body, _ = await acurl("-H", f"Host: {host}", f"http://127.0.0.1:{port}{path}")
    return json.loads(body)["name"] if status == 200 else None


async def test_routing_by_host_and_path_with_precedence_default_backend_and_bad_backends(agent):
    http, _ = agent.test_ports
    _, warnings = await agent.controller.apply(backend("ing-a") + "---\n" + backend("ing-b") + "---\n" + ROUTES)
    assert any("ghost" in w and "not found" in w for w in warnings), warnings
    assert any("no port 9999" in w for w in warnings), warnings
    await until(lambda: served_by(http, "a.example.com", "/"), timeout=90)
    await until(lambda: served_by(http, "x.example.com", "/"), timeout=30)
    cases = [
        ("a.example.com", "/", "ing-a"),
        ("a.example.com", "/anything", "ing-a"),
        ("a.example.com", "/b", "ing-b"),  # the longest prefix
        ("a.example.com", "/b/c?q=1", "ing-b"),
        ("a.example.com", "/bc", "ing-a"),  # element-wise: /b does not match /bc
        ("a.example.com", "/b/exact", "ing-a"),  # Exact before Prefix
        ("a.example.com:8080", "/b", "ing-b"),  # the port is not part of the host
        ("x.example.com", "/b", "ing-b"),  # the wildcard host
        ("x.y.example.com", "/", "ing-a"),  # a wildcard matches one label: the defaultBackend
        ("other.test", "/", "ing-a"),  # the defaultBackend
    ]
    for host, path, expected in cases:
        assert await served_by(http, host, path) == expected, (host, path)
    status, body, _ = await acurl("-H", "Host: a.example.com", "-H", "X-Forwarded-Proto: https",
                                  f"http://127.0.0.1:{http}/b/x")
    seen = json.loads(body)
    assert seen["path"] == "/b/x" and seen["xfp"] == "http" and seen["xfh"] == "a.example.com"
    assert seen["xff"] == "127.0.0.1" and 'proto=http;host="a.example.com"' in seen["fwd"]
    status, body, _ = await acurl("-H", "Host: ghost.example.com", f"http://127.0.0.1:{http}/")
    assert status == 503 and "default/ghost" in body, body
    status, body, _ = await acurl("-H", "Host: ghost.example.com", f"http://127.0.0.1:{http}/port")
    assert status == 503 and "no port 9999" in body, body

    # a newer Ingress claiming a.example.com /b loses to the older one, with an event; another class is ignored
    await asyncio.sleep(1.1)  # creationTimestamps are in seconds
    await agent.controller.apply(LATE + "---\n" + OTHER_CLASS)
    await eventually(lambda: any(e.reason == "Conflict" for e in agent.controller.events.of("Ingress", "default", "late")))
    await eventually(lambda: any(e.reason == "IngressIgnored"
                                 for e in agent.controller.events.of("Ingress", "default", "nginx-one")))
    assert await served_by(http, "a.example.com", "/b") == "ing-b"
    assert await served_by(http, "n.other.test", "/") == "ing-a"  # not routed: the defaultBackend

    metrics = (await acurl(f"http://{agent.sidecar.metrics}/metrics"))[1]
    assert re.search(r'meshd_sidecar_ingress_requests_total\{host="a.example.com",ingress="default/site",listener="http",'
                     r'path="/b",service="default/ing-b"\} [1-9]', metrics), metrics[-3000:]
    assert re.search(r'meshd_sidecar_ingress_refused_total\{code="503",listener="http"\} [1-9]', metrics)

    if shutil.which("kubectl"):
        kubeconfig = Path(agent.state_dir) / "kubeconfig.test"
        kubeconfig.write_text(await run("python3", "-m", "meshd.cli", "kubeconfig", "--state-dir",
                                        str(agent.state_dir), "--api", agent.options.api))
        env = {"KUBECONFIG": str(kubeconfig), "HOME": str(Path(agent.state_dir))}
        out = await run("kubectl", "get", "ing", "site", env=env)
        assert re.search(r"NAME\s+CLASS\s+HOSTS\s+ADDRESS\s+PORTS\s+AGE", out), out
        assert re.search(r"site\s+meshd\s+a.example.com,\*.example.com,ghost.example.com\s+127.0.0.1\s+80\s", out), out
        assert "meshd.io/ingress" in await run("kubectl", "get", "ingressclass", env=env)
        described = await run("kubectl", "describe", "ingress", "late", env=env)
        assert "already served by Ingress default/site" in described, described
        # kubectl apply and delete of an Ingress (server-side validation by the OpenAPI documents)
        manifest = Path(agent.state_dir) / "kubectl-ing.yaml"
        manifest.write_text(LATE.replace("name: late", "name: by-kubectl").replace("a.example.com", "k.other.test")
                            .replace("ing-a", "ing-b"))
        await run("kubectl", "apply", "-f", str(manifest), env=env)
        await until(lambda: _is(served_by(http, "k.other.test", "/b"), "ing-b"), timeout=30)
        await run("kubectl", "delete", "-f", str(manifest), env=env)
        await until(lambda: _is(served_by(http, "k.other.test", "/b"), "ing-a"), timeout=30)  # the defaultBackend


async def _is(value, expected) -> bool:  # type: ignore[no-untyped-def]
    return await value == expected


async def run(*args: str, env: dict[str, str] | None = None) -> str:
    """A command's output (it runs beside the agent's loop, which it may call)."""
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                env={**os.environ, **(env or {})})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


# --- TLS ----------------------------------------------------------------------------------------------------
def make_cert(tmp_path: Path, host: str, tag: str) -> tuple[str, str, Path]:
    """A self-signed certificate for `host` (its own CA): (cert PEM, key PEM, cert file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{host} {tag}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    path = tmp_path / f"{host}-{tag}.pem"
    path.write_text(cert_pem)
    return cert_pem, key_pem, path


def tls_secret(name: str, cert: str, key: str) -> str:
    b64 = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Secret
        metadata: {{name: {name}}}
        type: kubernetes.io/tls
        data: {{tls.crt: {b64(cert)}, tls.key: {b64(key)}}}
        """)


TLS_INGRESS = textwrap.dedent("""\
    apiVersion: networking.k8s.io/v1
    kind: Ingress
    metadata: {name: secure}
    spec:
      tls:
      - {hosts: [one.example.com], secretName: tls-one}
      - {hosts: [two.example.com], secretName: tls-two}
      rules:
      - host: one.example.com
        http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: ing-a, port: {number: 80}}}}]}
      - host: two.example.com
        http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: ing-b, port: {number: 80}}}}]}
    """)


def subject_seen(port: int, host: str) -> str:
    """The subject of the certificate `openssl s_client` gets for SNI `host`."""
    done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", host],
                          input="", capture_output=True, text=True, timeout=20)
    match = re.search(r"subject=.*?CN\s*=\s*([^\n,]+)", done.stdout)
    return match.group(1).strip() if match else ""


async def test_https_sni_rotation_invalid_certificates_and_tls_garbage(agent, tmp_path):
    http, https = agent.test_ports
    one = make_cert(tmp_path, "one.example.com", "first")
    two = make_cert(tmp_path, "two.example.com", "first")
    await agent.controller.apply("---\n".join([
        backend("ing-a"), backend("ing-b"), tls_secret("tls-one", *one[:2]), tls_secret("tls-two", *two[:2]),
        TLS_INGRESS]))

    async def https_get(host: str, cafile: Path, path: str = "/") -> tuple[int, str, str]:
        return await acurl("--resolve", f"{host}:{https}:127.0.0.1", "--cacert", str(cafile),
                           f"https://{host}:{https}{path}")

    async def name_over_https(host: str, cafile: Path) -> str | None:
        status, body, _ = await https_get(host, cafile)
        return json.loads(body)["name"] if status == 200 else None

    assert await until(lambda: name_over_https("one.example.com", one[2]), timeout=90) == "ing-a"
    assert await until(lambda: name_over_https("two.example.com", two[2]), timeout=30) == "ing-b"
    status, body, _ = await https_get("two.example.com", two[2], "/x")
    assert json.loads(body)["xfp"] == "https"
    # the plain HTTP listener redirects the TLS hosts (as ingress-nginx does by default)
    status, _, head = await acurl("-H", "Host: one.example.com", f"http://127.0.0.1:{http}/p?q=1")
    assert status == 308 and f"location: https://one.example.com:{https}/p?q=1" in head.lower(), head

    # TLS garbage from a client is closed; a connection already open is not disturbed
    reader, writer = await asyncio.open_connection("127.0.0.1", https)
    writer.write(b"\x16\x03\x01\x00\x05hello this is not TLS at all\r\n\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 20) is not None  # closed (EOF or an alert, then EOF)
    writer.close()
    assert await name_over_https("one.example.com", one[2]) == "ing-a"

    # rotation: a new certificate in the Secret; new handshakes get it
    assert await asyncio.to_thread(subject_seen, https, "one.example.com") == "one.example.com first"
    rotated = make_cert(tmp_path, "one.example.com", "second")
    await agent.controller.apply(tls_secret("tls-one", *rotated[:2]))
    await until(lambda: _subject_is(https, "one.example.com", "one.example.com second"), timeout=30)
    assert await name_over_https("one.example.com", rotated[2]) == "ing-a"
    assert await asyncio.to_thread(subject_seen, https, "two.example.com") == "two.example.com first"

    # an invalid certificate: an event, the Ingress's status says so, the previous certificate stays
    await agent.controller.apply(tls_secret("tls-two", two[0], one[1]))  # a key that is not the cert's
    await eventually(lambda: any(e.reason == "InvalidCertificate"
                                 for e in agent.controller.events.of("Ingress", "default", "secure")), timeout=30)
    assert await asyncio.to_thread(subject_seen, https, "two.example.com") == "two.example.com first"
    assert await name_over_https("two.example.com", two[2]) == "ing-b"
    obj = agent.api._read(__import__("meshd.api.kinds", fromlist=["INGRESS"]).INGRESS, "default", "secure")
    assert "tls-two" in obj["status"]["loadBalancer"]["ingress"][0]["ports"][-1]["error"]


async def _subject_is(port: int, host: str, subject: str) -> bool:
    return await asyncio.to_thread(subject_seen, port, host) == subject


# --- a rolling update behind the Ingress, under load ---------------------------------------------------------
@pytest.mark.skipif(shutil.which("hey") is None, reason="hey is not installed (apt-get install hey)")
async def test_rolling_update_behind_the_ingress_under_hey_loses_no_request(agent):
    http, _ = agent.test_ports
    ingress = ROUTES.split("      - host: ghost.example.com")[0]
    await agent.controller.apply(backend("ing-a", replicas=3) + "---\n" + backend("ing-b") + "---\n" + ingress)
    await until(lambda: served_by(http, "a.example.com", "/"), timeout=90)
    hey = await load.start_async(f"http://127.0.0.1:{http}/", "-host", "a.example.com")
    await asyncio.sleep(1)
    await agent.controller.apply(backend("ing-a", replicas=3, version="v2"))
    await asyncio.sleep(0.3)
    await eventually(lambda: agent.controller.progress.get(("default", "ing-a"))
                     and agent.controller.progress[("default", "ing-a")].complete, timeout=90)
    await eventually(lambda: len(pods(agent, "ing-a-")) == 3, timeout=60)  # the load lasts until the old pods are gone
    codes, output = await load.stop_async(hey)
    assert set(codes) == {"200"} and codes["200"] > 100, output
    assert "Error distribution" not in output, output
