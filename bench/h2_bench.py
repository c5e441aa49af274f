#!/usr/bin/env python3
"""Side-by-side HTTP/2 and gRPC benchmark: nginx, HAProxy and meshd-sidecar balancing the same backends.

In one run, two loads, each through every balancer in turn (one worker/thread each) and straight to a backend:
  h2c   h2load -n N -c C -m M (many streams over few connections) against two h2c nginx backends
        (`listen PORT http2;`, a static 200);
  gRPC  h2load with gRPC framing (POST /test.Echo/Unary, content-type application/grpc, te: trailers, an
        empty message) against two grpcio replicas (bench/h2/grpc_backend.py).
nginx proxies with `grpc_pass grpc://` (its only HTTP/2 upstream), HAProxy with `proto h2` on bind and
server, the sidecar with a Service port named `http2` / `grpc` fed by the fake agent. Prints requests/s,
the ratio to nginx, and the balancer's CPU per request (/proc/PID/stat, user+system).

    python bench/h2_bench.py [--requests 20000] [--grpc-requests 10000] [--clients 4] [--streams 10] [--rounds 1]

Not a test. The goal of issue 10: the sidecar at >= 0.5x nginx's requests/s.
"""

from __future__ import annotations

import argparse
import json
import math
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
NGINX_BACKENDS = """
worker_processes 1; daemon off; pid {tmp}/backends.pid; error_log {tmp}/backends.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000; http2_max_requests 1000000;
  server {{ listen 127.0.0.1:{b1} http2; location / {{ return 200 "hello from b1\\n"; }} }}
  server {{ listen 127.0.0.1:{b2} http2; location / {{ return 200 "hello from b2\\n"; }} }}
}}
"""
NGINX_LB = """
worker_processes 1; daemon off; pid {tmp}/lb.pid; error_log {tmp}/lb.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000; http2_max_requests 1000000;
  upstream h2c {{ server 127.0.0.1:{b1}; server 127.0.0.1:{b2}; keepalive 64; keepalive_requests 1000000; }}
  upstream grpcs {{ server 127.0.0.1:{g1}; server 127.0.0.1:{g2}; keepalive 64; keepalive_requests 1000000; }}
  server {{ listen 127.0.0.1:{h2c_port} http2; location / {{ grpc_pass grpc://h2c; }} }}
  server {{ listen 127.0.0.1:{grpc_port} http2; location / {{ grpc_pass grpc://grpcs; }} }}
}}
"""
HAPROXY = """
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 3s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend h2c
  bind 127.0.0.1:{h2c_port} proto h2
  default_backend h2c
frontend grpc
  bind 127.0.0.1:{grpc_port} proto h2
  default_backend grpc
backend h2c
  balance roundrobin
  server b1 127.0.0.1:{b1} proto h2
  server b2 127.0.0.1:{b2} proto h2
backend grpc
  balance roundrobin
  server g1 127.0.0.1:{g1} proto h2
  server g2 127.0.0.1:{g2} proto h2
"""
_FINISHED = re.compile(r"finished in ([\d.]+)(s|ms), ([\d.]+) req/s")
_REQUESTS = re.compile(
    r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored"
)
_STATUS = re.compile(r"status codes: (\d+) 2xx")


def h2load(url: str, *, n: int, clients: int, streams: int, grpc: Path | None) -> tuple[float, int, int]:
    """(requests/s, 2xx responses, failures) of one h2load run."""
    args = ["h2load", "-n", str(n), "-c", str(clients), "-m", str(streams), "-t", "1"]
    if grpc is not None:
        args += ["-d", str(grpc), "-H", "content-type: application/grpc", "-H", "te: trailers"]
    out = subprocess.run([*args, url], check=False, capture_output=True, text=True, timeout=600).stdout
    finished, requests, status = _FINISHED.search(out), _REQUESTS.search(out), _STATUS.search(out)
    if not (finished and requests and status):
        raise RuntimeError(f"h2load said:\n{out}")
    failures = int(requests.group(3)) + int(requests.group(4))
    return float(finished.group(3)), int(status.group(1)), failures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=20000, help="h2c requests per balancer")
    p.add_argument("--grpc-requests", type=int, default=10000, help="gRPC calls per balancer")
    p.add_argument("--clients", type=int, default=4, help="h2load connections")
    p.add_argument("--streams", type=int, default=10, help="h2load concurrent streams per connection")
    p.add_argument("--rounds", type=int, default=1, help="runs per balancer (the best is kept)")
    p.add_argument(
        "--compare-root", default="",
        help="also run the sidecar from this directory (another checkout), as 'sidecar-base'",
    )  # fmt: skip
    args = p.parse_args()
    for tool in ("h2load", "nginx", "haproxy"):
        if not shutil.which(tool):
            sys.exit(f"needs {tool}")
    env = dict(os.environ, PYTHONPATH=f"{ROOT}:{os.environ.get('PYTHONPATH', '')}")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        stack = Stack(tmp)
        try:
            b1, b2, g1, g2 = (free_port() for _ in range(4))
            (tmp / "backends.conf").write_text(NGINX_BACKENDS.format(tmp=tmp, b1=b1, b2=b2))
            stack.start(["nginx", "-c", str(tmp / "backends.conf"), "-e", str(tmp / "backends.err")])
            for i, port in enumerate((g1, g2)):
                stack.start(
                    [sys.executable, str(HERE / "h2" / "grpc_backend.py"), f"g{i}", f"127.0.0.1:{port}"]
                )
            for port in (b1, b2, g1, g2):
                wait_port(port)
            grpc_body = tmp / "request.bin"
            grpc_body.write_bytes(b"\x00\x00\x00\x00\x00")  # one empty gRPC message

            balancers: dict[str, tuple[int, int, list[int]]] = {}  # name -> h2c port, grpc port, pids
            h2c_port, grpc_port = free_port(), free_port()
            (tmp / "lb.conf").write_text(NGINX_LB.format(tmp=tmp, b1=b1, b2=b2, g1=g1, g2=g2,
                                                         h2c_port=h2c_port, grpc_port=grpc_port))  # fmt: skip
            nginx = stack.start(["nginx", "-c", str(tmp / "lb.conf"), "-e", str(tmp / "lb.err")])
            wait_port(h2c_port)
            balancers["nginx"] = (h2c_port, grpc_port, proc_tree(nginx.pid))
            h2c_port, grpc_port = free_port(), free_port()
            (tmp / "haproxy.cfg").write_text(HAPROXY.format(b1=b1, b2=b2, g1=g1, g2=g2,
                                                            h2c_port=h2c_port, grpc_port=grpc_port))  # fmt: skip
            haproxy = stack.start(["haproxy", "-db", "-f", str(tmp / "haproxy.cfg")])
            wait_port(h2c_port)
            balancers["haproxy"] = (h2c_port, grpc_port, [haproxy.pid])

            def service(name: str, port_name: str, ports: tuple[int, int]) -> dict[str, object]:
                return {
                    "service": {"namespace": "default", "name": name, "address": None,
                                "ports": [{"name": port_name, "port": 80, "targetPort": port_name}], "annotations": {}},
                    "endpoints": [{"name": f"{name}{i}", "address": "127.0.0.1", "ports": {port_name: bp}, "ready": True}
                                  for i, bp in enumerate(ports)],
                }  # fmt: skip

            (tmp / "services.json").write_text(json.dumps([service("web", "http2", (b1, b2)),
                                                           service("echo", "grpc", (g1, g2))]))  # fmt: skip
            agent_port = free_port()
            stack.start(
                [sys.executable, str(HERE / "proxy" / "fake_agent.py"), "--listen", f"127.0.0.1:{agent_port}",
                 "--config", str(tmp / "services.json")], env=env,
            )  # fmt: skip
            wait_port(agent_port)
            roots = {"sidecar": ROOT} | (
                {"sidecar-base": Path(args.compare_root).resolve()} if args.compare_root else {}
            )
            for label, root in roots.items():
                pids = []
                ports = []
                for name in ("default/web", "default/echo"):
                    port = free_port()
                    sidecar = stack.start(
                        [sys.executable, "-m", "sidecar", "--api", f"127.0.0.1:{agent_port}", "--listen",
                         f"127.0.0.1:{port}", "--service", name, "--metrics", f"127.0.0.1:{free_port()}",
                         "--log-level", "WARNING"],
                        env=dict(env, PYTHONPATH=f"{root}:{os.environ.get('PYTHONPATH', '')}"), cwd=root,
                    )  # fmt: skip
                    wait_port(port)
                    pids.append(sidecar.pid)
                    ports.append(port)
                balancers[label] = (ports[0], ports[1], pids)
            time.sleep(1.0)

            targets = {"direct": (b1, g1, [])} | balancers
            results: dict[str, dict[str, tuple[float, float, int]]] = {"h2c": {}, "grpc": {}}
            for load in ("h2c", "grpc"):
                for name, (hport, gport, procs) in targets.items():
                    best = (0.0, float("nan"), 0)
                    for _ in range(args.rounds):
                        # warm-up: connections, pools and caches
                        url = (
                            f"http://127.0.0.1:{hport}/"
                            if load == "h2c"
                            else f"http://127.0.0.1:{gport}/test.Echo/Unary"
                        )
                        body = None if load == "h2c" else grpc_body
                        h2load(url, n=500, clients=args.clients, streams=args.streams, grpc=body)
                        n = args.requests if load == "h2c" else args.grpc_requests
                        cpu0 = cpu_seconds(procs)
                        rps, ok, failed = h2load(
                            url, n=n, clients=args.clients, streams=args.streams, grpc=body
                        )
                        cpu = cpu_seconds(procs) - cpu0
                        us = cpu / n * 1e6 if procs else float("nan")
                        if rps > best[0]:
                            best = (rps, us, failed + (n - ok))
                    results[load][name] = best
            print_results(results, args)
        finally:
            stack.stop_all()


def print_results(results: dict[str, dict[str, tuple[float, float, int]]], args: argparse.Namespace) -> None:
    print(f"h2load -c {args.clients} -m {args.streams} -t 1; h2c {args.requests} requests, gRPC {args.grpc_requests} "
          f"unary calls per balancer; CPU = the balancer's user+system time per request")  # fmt: skip
    for load, rows in results.items():
        print(f"\n{load}:")
        print(f"  {'':10} {'req/s':>9} {'x nginx':>8} {'CPU us/req':>11} {'x nginx':>8} {'failed':>7}")
        ref_rps, ref_cpu, _ = rows["nginx"]
        for name, (rps, us, failed) in rows.items():
            cpu_ratio = f"{us / ref_cpu:8.2f}" if not math.isnan(us) and ref_cpu else f"{'':8}"
            cpu = f"{us:11.1f}" if not math.isnan(us) else f"{'-':>11}"
            print(f"  {name:10} {rps:9.0f} {rps / ref_rps:8.2f} {cpu} {cpu_ratio} {failed:7d}")
    print()
    for load, rows in results.items():
        ratio = rows["sidecar"][0] / rows["nginx"][0]
        print(
            f"{load}: sidecar at {ratio:.2f}x nginx's requests/s (goal >= 0.5x): {'met' if ratio >= 0.5 else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
