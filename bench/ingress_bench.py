#!/usr/bin/env python3
"""HTTPS through the Ingress: the node sidecar's Ingress listener against nginx terminating TLS, for the same two
backends (nginx, a static 200), in one run, one worker each.

  keep-alive   h2load --h1 -n N -c C over HTTPS (HTTP/1.1, connections reused): requests/s
  handshakes   hey -disable-keepalive over HTTPS: a new TCP connection and a full TLS handshake per request
               (hey keeps no session cache): requests/s = handshakes/s

The sidecar runs in node mode with `--ingress-https`, fed by the fake agent (bench/proxy/fake_agent.py) a
Service and an Ingress table whose certificate (ECDSA P-256, made here) both balancers serve. nginx proxies with
an upstream keep-alive pool. Prints requests/s, the ratio to nginx and the balancer's CPU per request.

    python bench/ingress_bench.py [--requests 20000] [--clients 8] [--handshake-seconds 10] [--pin]

Not a test. The goal of issue 13: HTTPS requests/s through the Ingress at >= 0.7x nginx's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_bench import ROOT, Stack, cpu_seconds, free_port, proc_tree, wait_port

HERE = Path(__file__).resolve().parent
HOST = "bench.example.com"
NGINX_BACKENDS = """
worker_processes 1; daemon off; pid {tmp}/backends.pid; error_log {tmp}/backends.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{b1}; location / {{ return 200 "hello from b1\\n"; }} }}
  server {{ listen 127.0.0.1:{b2}; location / {{ return 200 "hello from b2\\n"; }} }}
}}
"""
NGINX_TLS = """
worker_processes 1; daemon off; pid {tmp}/lb.pid; error_log {tmp}/lb.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  upstream backends {{ server 127.0.0.1:{b1}; server 127.0.0.1:{b2}; keepalive 64; keepalive_requests 1000000; }}
  server {{ listen 127.0.0.1:{port} ssl; server_name {host};
    ssl_certificate {cert}; ssl_certificate_key {key}; ssl_session_cache off; ssl_session_tickets off;
    location / {{ proxy_pass http://backends; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                 proxy_set_header X-Forwarded-Proto $scheme; }} }}
}}
"""


def make_cert(tmp: Path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    (tmp / "cert.pem").write_text(cert_pem)
    (tmp / "key.pem").write_text(key_pem)
    os.chmod(tmp / "key.pem", 0o600)
    return cert_pem, key_pem


def keepalive(port: int, *, requests: int, clients: int, pin: list[str], scheme: str = "https"
              ) -> tuple[float, int]:
    """h2load over HTTPS/1.1 (or plain HTTP/1.1) with keep-alive: (requests/s, failed)."""
    out = subprocess.run(
        [*pin, "h2load", "--h1", "-n", str(requests), "-c", str(clients), "-H", f":authority: {HOST}",
         f"{scheme}://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    failed = int(m.group(2)) + int(m.group(3)) if m else -1
    if failed:
        print(out[-1500:], file=sys.stderr)
    return rps, failed


def handshakes(port: int, *, seconds: int, clients: int, pin: list[str]) -> tuple[float, int]:
    """hey with a new connection (and TLS handshake) per request: (requests/s, non-200 or errors)."""
    out = subprocess.run(
        [*pin, "hey", "-z", f"{seconds}s", "-c", str(clients), "-disable-keepalive", "-host", HOST,
         f"https://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    codes = {c: int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    errors = sum(n for c, n in codes.items() if c != "200")
    m = re.search(r"Error distribution:\n((?:\s+\[\d+\].*\n?)+)", out)
    if m:
        errors += sum(int(n) for n in re.findall(r"\[(\d+)\]", m.group(1)))
    return rps, errors


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=20000, help="keep-alive requests per balancer")
    p.add_argument("--clients", type=int, default=8, help="concurrent connections")
    p.add_argument("--handshake-seconds", type=int, default=8, help="seconds of new-connection load each")
    p.add_argument("--pin", action="store_true", help="load and backends on CPU 0, each balancer on CPU 1")
    args = p.parse_args()
    for tool in ("nginx", "h2load", "hey"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed (apt-get install nginx nghttp2-client hey)")
    pin_load = ["taskset", "-c", "0"] if args.pin else []
    pin_balancer = ["taskset", "-c", "1"] if args.pin else []
    env = dict(os.environ, PYTHONPATH=f"{ROOT}:{HERE / 'proxy'}")
    with tempfile.TemporaryDirectory(prefix="meshd-ingress-bench-") as tmp_name:
        tmp = Path(tmp_name)
        stack = Stack(tmp)
        try:
            cert, key = make_cert(tmp)
            b1, b2 = free_port(), free_port()
            (tmp / "backends.conf").write_text(NGINX_BACKENDS.format(tmp=tmp, b1=b1, b2=b2))
            stack.start([*pin_load, "nginx", "-c", str(tmp / "backends.conf"), "-e", str(tmp / "backends.err")])
            wait_port(b1)
            balancers: dict[str, tuple[int, int]] = {}
            port = free_port()
            (tmp / "lb.conf").write_text(NGINX_TLS.format(tmp=tmp, b1=b1, b2=b2, port=port, host=HOST,
                                                          cert=tmp / "cert.pem", key=tmp / "key.pem"))
            proc = stack.start([*pin_balancer, "nginx", "-c", str(tmp / "lb.conf"), "-e", str(tmp / "lb.err")])
            wait_port(port)
            balancers["nginx"] = (port, proc.pid)

            services = [{"service": {"namespace": "default", "name": "web", "address": None,
                                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
                                     "annotations": {}},
                         "endpoints": [{"name": f"b{i}", "address": "127.0.0.1", "ports": {"http": bp},
                                        "ready": True} for i, bp in enumerate((b1, b2))]}]
            (tmp / "services.json").write_text(json.dumps(services))
            table = {"type": "Ingress", "routes": [{"host": HOST, "path": "/", "pathType": "Prefix",
                                                   "ingress": "default/bench", "sslRedirect": False,
                                                   "backend": {"namespace": "default", "service": "web",
                                                               "port": 80}}],
                     "default": None, "tls": [{"hosts": [HOST], "secret": "default/bench-tls"}],
                     "certificates": {"default/bench-tls": {"cert": cert, "key": key}}}
            (tmp / "ingress.json").write_text(json.dumps(table))
            (tmp / "ingress.json").chmod(0o600)
            agent_port = free_port()
            stack.start([sys.executable, str(HERE / "proxy" / "fake_agent.py"), "--listen",
                         f"127.0.0.1:{agent_port}", "--config", str(tmp / "services.json"), "--ingress",
                         str(tmp / "ingress.json")], env=env)
            wait_port(agent_port)
            port, plain_port = free_port(), free_port()
            sidecar = stack.start([*pin_balancer, sys.executable, "-m", "sidecar", "--api", f"127.0.0.1:{agent_port}",
                                   "--metrics", f"127.0.0.1:{free_port()}", "--ingress-https", f"127.0.0.1:{port}",
                                   "--ingress-http", f"127.0.0.1:{plain_port}", "--log-level", "WARNING"], env=env)
            wait_port(port)
            time.sleep(1.0)  # the Ingress table and its certificate
            balancers["sidecar"] = (port, sidecar.pid)

            results: dict[str, dict[str, float]] = {}
            for name, (port, pid) in balancers.items():
                keepalive(port, requests=min(2000, args.requests), clients=args.clients, pin=pin_load)  # warm-up
                cpu0 = cpu_seconds(proc_tree(pid))
                rps, failed = keepalive(port, requests=args.requests, clients=args.clients, pin=pin_load)
                cpu = cpu_seconds(proc_tree(pid)) - cpu0
                hs, hs_errors = handshakes(port, seconds=args.handshake_seconds, clients=args.clients, pin=pin_load)
                results[name] = {"rps": rps, "failed": failed, "cpu_us": cpu / args.requests * 1e6,
                                 "handshakes": hs, "hs_errors": hs_errors}
            plain, plain_failed = keepalive(plain_port, requests=args.requests, clients=args.clients, pin=pin_load,
                                            scheme="http")
        finally:
            stack.stop_all()
    base = results["nginx"]
    print(f"HTTPS through the Ingress vs nginx terminating TLS (one worker each, {args.clients} connections, "
          f"{args.requests} keep-alive requests; {args.handshake_seconds}s of new connections)")
    print(f"{'':10} {'keep-alive req/s':>17} {'x nginx':>8} {'CPU us/req':>11} {'handshakes/s':>13} {'x nginx':>8}"
          f" {'failed':>7}")
    for name, r in results.items():
        print(f"{name:10} {r['rps']:17.0f} {r['rps'] / base['rps']:8.2f} {r['cpu_us']:11.0f} {r['handshakes']:13.0f}"
              f" {r['handshakes'] / base['handshakes']:8.2f} {int(r['failed'] + r['hs_errors']):7d}")
    print(f"(the same sidecar's plain HTTP Ingress listener, for the cost of TLS: {plain:.0f} req/s keep-alive, "
          f"{plain_failed} failed)")
    print("goal (issue 13): keep-alive HTTPS req/s >= 0.7x nginx:",
          "met" if results["sidecar"]["rps"] >= 0.7 * base["rps"] else "NOT met")


if __name__ == "__main__":
    main()
