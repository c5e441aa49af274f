"""Cross-node requests through two proxies, side by side in one run (issue 15): a client on "node A" calls a
Service whose pod is on "node B", over loopback:

  meshd-mtls    hey -> sidecar A -> mutual TLS 1.3 (meshd/1) -> sidecar B's mesh gateway -> the pod
  meshd-plain   the same two sidecars with --mesh-plaintext (the gateway path without TLS: what TLS costs)
  nginx-mtls    hey -> nginx A -> TLS 1.3 with a client certificate -> nginx B -> the pod (the same certificates)
  nginx-plain   hey -> nginx A -> nginx B -> the pod
  direct        hey -> the pod (the baseline "added" latency is measured against)

The pod is nginx answering a small static body; every proxy runs one process / one worker; upstream connections
are kept alive (sidecar pools, nginx `keepalive`). With `--pod-closes` the pod closes every connection (as
HTTP/1.0 servers do), so every request opens a new connection to node B's gateway, and one more path runs:

  meshd-cold    meshd-mtls without warm gateway connections (MESHD_MESH_WARM=0: a TLS handshake per request)
 Latency: interleaved rounds of `hey` at a fixed rate (p50/p99
from its per-request CSV, the first second of each run dropped); throughput: `wrk` with 32 connections. Prints
the table and the ratios: mTLS against plaintext, meshd against nginx.

    python3 bench/mesh_tls_bench.py [--rate 500] [--rounds 3] [--duration 5] [--pod-closes]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE / "proxy"))

from bench.proxy_bench import Stack, free_port, median, run_hey_rate, run_wrk, wait_port  # noqa: E402
from mesh_pair import write_node  # noqa: E402

from meshd.cluster.pki import make_cluster_ca  # noqa: E402

POD = """
worker_processes 1; daemon off; pid {tmp}/pod.pid; error_log {tmp}/pod.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000; {pod_keepalive}
  server {{ listen 127.0.0.1:{pod}; location / {{ return 200 "hello from node B\\n"; }} }}
}}
"""
NGINX_B = """
worker_processes 1; daemon off; pid {tmp}/nginx-b.pid; error_log {tmp}/nginx-b.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  upstream pod {{ server 127.0.0.1:{pod}; keepalive 64; keepalive_requests 1000000; }}
  server {{ listen 127.0.0.1:{b_tls} ssl; ssl_protocols TLSv1.3;
    ssl_certificate {b}/node.pem; ssl_certificate_key {b}/node-key.pem;
    ssl_client_certificate {b}/ca.pem; ssl_verify_client on; ssl_session_cache shared:b:1m;
    location / {{ proxy_pass http://pod; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}
  server {{ listen 127.0.0.1:{b_plain};
    location / {{ proxy_pass http://pod; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}
}}
"""
NGINX_A = """
worker_processes 1; daemon off; pid {tmp}/nginx-a.pid; error_log {tmp}/nginx-a.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  upstream b_tls {{ server 127.0.0.1:{b_tls}; keepalive 64; keepalive_requests 1000000; }}
  upstream b_plain {{ server 127.0.0.1:{b_plain}; keepalive 64; keepalive_requests 1000000; }}
  server {{ listen 127.0.0.1:{a_tls};
    location / {{ proxy_pass https://b_tls; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_ssl_protocols TLSv1.3; proxy_ssl_certificate {a}/node.pem; proxy_ssl_certificate_key {a}/node-key.pem;
      proxy_ssl_trusted_certificate {a}/ca.pem; proxy_ssl_verify on; proxy_ssl_name node-b;
      proxy_ssl_server_name on; proxy_ssl_session_reuse on; }} }}
  server {{ listen 127.0.0.1:{a_plain};
    location / {{ proxy_pass http://b_plain; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}
}}
"""
PATHS = ("direct", "meshd-mtls", "meshd-plain", "nginx-mtls", "nginx-plain")


def service_config(path: Path, *, pod: int, gateway: str | None) -> None:
    """The fake agent's Services: on node A the pod is remote (through `gateway`), on node B local."""
    endpoint = {"name": "web-0", "address": "127.0.0.1", "ports": {"http": pod}, "ready": True, "node": "node-b"}
    if gateway:
        endpoint["gateway"] = gateway
    path.write_text(json.dumps([{
        "service": {"namespace": "default", "name": "web", "address": None,
                    "ports": [{"name": "http", "port": 80, "targetPort": pod}], "annotations": {}},
        "endpoints": [endpoint]}]))


def start_pair(stack: Stack, tmp: Path, env: dict[str, str], *, pod: int, plaintext: bool, name: str = "") -> int:
    """Two sidecars (A serves the Service on a port of its own, B the gateway); A's listening port."""
    name = name or ("plain" if plaintext else "mtls")
    gateway, listen = free_port(), free_port()
    for node, remote in (("a", True), ("b", False)):
        config = tmp / f"{name}-{node}.json"
        service_config(config, pod=pod, gateway=f"127.0.0.1:{gateway}" if remote else None)
        agent = free_port()
        stack.start([sys.executable, str(HERE / "proxy" / "fake_agent.py"), "--listen", f"127.0.0.1:{agent}",
                     "--config", str(config)], env=env)
        wait_port(agent)
        mesh = ["--mesh-plaintext"] if plaintext else ["--mesh-dir", str(tmp / f"node-{node}")]
        where = (["--listen", f"127.0.0.1:{listen}", "--service", "default/web"] if remote
                 else ["--mesh-listen", f"127.0.0.1:{gateway}"])
        stack.start([sys.executable, "-m", "sidecar", "--api", f"127.0.0.1:{agent}", "--metrics",
                     f"127.0.0.1:{free_port()}", "--log-level", "WARNING", *mesh, *where], env=env, cwd=ROOT)
    wait_port(gateway)
    wait_port(listen)
    return listen


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=int, default=500, help="requests/s of the latency runs")
    p.add_argument("--duration", type=int, default=5, help="seconds per hey run")
    p.add_argument("--rounds", type=int, default=3, help="interleaved latency rounds")
    p.add_argument("--wrk-duration", type=int, default=5, help="seconds per wrk throughput run")
    p.add_argument("--pod-closes", action="store_true", help="the pod closes every connection (HTTP/1.0-like); "
                   "adds meshd-cold, meshd-mtls without warm gateway connections")
    args = p.parse_args()
    order = PATHS + (("meshd-cold",) if args.pod_closes else ())
    for tool in ("nginx", "hey", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed")
    tmp = Path(tempfile.mkdtemp(prefix="meshd-mesh-bench-"))
    stack = Stack(tmp)
    env = dict(os.environ, PYTHONPATH=f"{ROOT}:{os.environ.get('PYTHONPATH', '')}")
    try:
        import datetime

        ca = make_cluster_ca(datetime.datetime.now(datetime.UTC))
        for node in ("a", "b"):
            write_node(tmp / f"node-{node}", ca, f"node-{node}")
        ports = {k: free_port() for k in ("pod", "b_tls", "b_plain", "a_tls", "a_plain")}
        for name, text in (("pod", POD), ("nginx-b", NGINX_B), ("nginx-a", NGINX_A)):
            (tmp / f"{name}.conf").write_text(text.format(tmp=tmp, a=tmp / "node-a", b=tmp / "node-b", **ports,
                                                          pod_keepalive="keepalive_timeout 0;" if args.pod_closes
                                                          else ""))
            stack.start(["nginx", "-c", str(tmp / f"{name}.conf"), "-e", str(tmp / f"{name}.err")])
        for port in ports.values():
            wait_port(port)
        targets = {"direct": ports["pod"], "nginx-mtls": ports["a_tls"], "nginx-plain": ports["a_plain"],
                   "meshd-mtls": start_pair(stack, tmp, env, pod=ports["pod"], plaintext=False),
                   "meshd-plain": start_pair(stack, tmp, env, pod=ports["pod"], plaintext=True)}
        if args.pod_closes:
            targets["meshd-cold"] = start_pair(stack, tmp, {**env, "MESHD_MESH_WARM": "0", "MESHD_MESH_REUSE": "0"},
                                               pod=ports["pod"],
                                               plaintext=False, name="cold")
        time.sleep(1.0)  # the sidecars' discovery
        for name in order:  # each path answers (and warms up: pools, TLS sessions)
            out = subprocess.run(["curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{targets[name]}/"],
                                 capture_output=True, text=True)
            if out.stdout != "hello from node B\n":
                sys.exit(f"{name} does not answer: {out.stdout!r} {out.stderr!r} (logs in {tmp})")
            run_hey_rate(targets[name], rate=args.rate, duration=2, trim=0.0)
        lat: dict[str, list[dict[str, float]]] = {n: [] for n in order}
        for r in range(args.rounds):
            for name in order[r % len(order):] + order[:r % len(order)]:
                lat[name].append(run_hey_rate(targets[name], rate=args.rate, duration=args.duration))
        thr = {name: run_wrk(targets[name], duration=args.wrk_duration, threads=2, connections=32)
               for name in order}
        report(args, lat, thr, order)
    finally:
        stack.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def report(args: argparse.Namespace, lat: dict[str, list[dict[str, float]]], thr: dict,  # type: ignore[type-arg]
           order: tuple[str, ...]) -> None:
    p50 = {n: median([r["p50"] for r in runs]) for n, runs in lat.items()}
    p99 = {n: median([r["p99"] for r in runs]) for n, runs in lat.items()}
    errors = {n: sum(int(r["errors"]) for r in runs) + thr[n].errors for n, runs in lat.items()}
    print(f"\ncross-node path, loopback; latency at {args.rate} req/s (hey -c 20, {args.duration} s x "
          f"{args.rounds} interleaved rounds, medians); throughput: wrk -t2 -c32 {args.wrk_duration} s")
    print(f"{'path':12s} {'p50 ms':>7s} {'p99 ms':>7s} {'+p50 ms':>8s} {'+p99 ms':>8s} {'req/s':>9s} {'errors':>6s}")
    for n in order:
        print(f"{n:12s} {p50[n] * 1e3:7.2f} {p99[n] * 1e3:7.2f} {(p50[n] - p50['direct']) * 1e3:8.2f} "
              f"{(p99[n] - p99['direct']) * 1e3:8.2f} {thr[n].rps:9.0f} {errors[n]:6d}")

    def added(q: dict[str, float], a: str, b: str) -> str:
        theirs = q[b] - q["direct"]  # a ratio to a difference below hey's 0.1 ms step (or negative) means nothing
        return f"{(q[a] - q['direct']) / theirs:.2f}x" if theirs >= 1e-4 else "n/a"

    def ratio(a: str, b: str) -> str:
        return (f"{a} vs {b}: added p50 {added(p50, a, b)}, added p99 {added(p99, a, b)}, "
                f"throughput {thr[a].rps / thr[b].rps:.2f}x")

    print()
    pairs = [("meshd-mtls", "meshd-plain"), ("nginx-mtls", "nginx-plain"), ("meshd-mtls", "nginx-mtls"),
             ("meshd-plain", "nginx-plain")] + ([("meshd-mtls", "meshd-cold")] if "meshd-cold" in order else [])
    for a, b in pairs:
        print(ratio(a, b))


if __name__ == "__main__":
    main()
