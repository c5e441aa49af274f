"""Opaque TCP through the sidecar against HAProxy `mode tcp` and against redis-server directly, in one run.

Two redis-server replicas on 127.0.0.1; the sidecar (`--listen`, fed by bench/proxy/fake_agent.py, the
Service port named `redis` so it is opaque TCP) and HAProxy (`mode tcp`, `balance leastconn`, one thread) in
front of both. `redis-benchmark -c 50 -t ping,set,get` (keep-alive: each client keeps its connection) runs
against direct, HAProxy and the sidecar in interleaved rounds (each round starts one target further on);
prints the median requests/s per test, the ratios to HAProxy and direct, and the balancer's CPU per request
(utime + stime from /proc/PID/stat over the run).

    python bench/tcp_bench.py [--requests 200000] [--clients 50] [--rounds 3] [--pipeline 1]

Not a test: the goal (issue 10) is the sidecar at >= 0.8x HAProxy's requests/s.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.proxy_bench import HERE, Stack, cpu_seconds, free_port, median, wait_port

TESTS = ("PING_INLINE", "PING_MBULK", "SET", "GET")
HAPROXY = """
global
  nbthread 1
  maxconn 4000
defaults
  mode tcp
  timeout connect 3s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:{port}
  default_backend be
backend be
  balance leastconn
  server r1 127.0.0.1:{r1}
  server r2 127.0.0.1:{r2}
"""


def benchmark(port: int, *, requests: int, clients: int, pipeline: int) -> dict[str, float]:
    """requests/s per test of one `redis-benchmark` run."""
    out = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-q", "-n", str(requests), "-c", str(clients),
         "-P", str(pipeline), "-t", "ping,set,get"],
        capture_output=True, text=True, check=True, timeout=600,
    ).stdout  # fmt: skip
    found = dict(re.findall(r"(\w+): ([\d.]+) requests per second", out.replace("\r", "\n")))
    missing = [t for t in TESTS if t not in found]
    if missing:
        raise RuntimeError(f"redis-benchmark printed no figure for {missing}: {out[-500:]}")
    return {t: float(found[t]) for t in TESTS}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=200_000, help="per test, per run")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pipeline", type=int, default=1, help="redis-benchmark -P")
    args = p.parse_args()
    for tool in ("redis-server", "redis-benchmark", "haproxy"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed")
    with tempfile.TemporaryDirectory(prefix="tcp-bench-") as tmpdir:
        tmp = Path(tmpdir)
        stack = Stack(tmp)
        try:
            r1, r2 = free_port(), free_port()
            for port in (r1, r2):
                stack.start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"])  # fmt: skip
                wait_port(port)
            targets: dict[str, tuple[int, int | None]] = {"direct": (r1, None)}
            hport = free_port()
            (tmp / "haproxy.cfg").write_text(HAPROXY.format(port=hport, r1=r1, r2=r2))
            haproxy = stack.start(["haproxy", "-db", "-f", str(tmp / "haproxy.cfg")])
            wait_port(hport)
            targets["haproxy"] = (hport, haproxy.pid)
            config = [{
                "service": {"namespace": "default", "name": "redis", "address": None,
                            "ports": [{"name": "redis", "port": 6379, "targetPort": "redis"}], "annotations": {}},
                "endpoints": [{"name": f"r{i}", "address": "127.0.0.1", "ports": {"redis": port}, "ready": True}
                              for i, port in enumerate((r1, r2))],
            }]  # fmt: skip
            (tmp / "services.json").write_text(json.dumps(config))
            agent_port = free_port()
            stack.start([sys.executable, str(HERE / "fake_agent.py"), "--listen", f"127.0.0.1:{agent_port}",
                         "--config", str(tmp / "services.json")])  # fmt: skip
            wait_port(agent_port)
            sport = free_port()
            sidecar = stack.start(
                [sys.executable, "-m", "sidecar", "--api", f"127.0.0.1:{agent_port}", "--listen",
                 f"127.0.0.1:{sport}", "--service", "default/redis", "--metrics", f"127.0.0.1:{free_port()}",
                 "--log-level", "WARNING"],
            )  # fmt: skip
            wait_port(sport)
            time.sleep(1.0)  # the endpoint stream arrives
            targets["sidecar"] = (sport, sidecar.pid)

            names = list(targets)
            rates: dict[str, dict[str, list[float]]] = {n: {t: [] for t in TESTS} for n in names}
            cpu: dict[str, list[float]] = {n: [] for n in names}  # balancer CPU seconds per request
            for r in range(args.rounds):
                order = names[r % len(names) :] + names[: r % len(names)]
                for name in order:
                    port, pid = targets[name]
                    before = cpu_seconds([pid]) if pid else 0.0
                    result = benchmark(
                        port, requests=args.requests, clients=args.clients, pipeline=args.pipeline
                    )
                    if pid:
                        cpu[name].append((cpu_seconds([pid]) - before) / (args.requests * len(TESTS)))
                    for t, v in result.items():
                        rates[name][t].append(v)
                    print(f"round {r + 1} {name:8} " + "  ".join(f"{t} {v:9.0f}" for t, v in result.items()),
                          flush=True)  # fmt: skip
        finally:
            stack.stop_all()
    print(f"\nredis-benchmark -c {args.clients} -n {args.requests} -P {args.pipeline}, median of {args.rounds} "
          "rounds, requests/s:")  # fmt: skip
    print(f"{'test':12} {'direct':>10} {'haproxy':>10} {'sidecar':>10} {'sc/haproxy':>11} {'sc/direct':>10}")
    for t in TESTS:
        d, h, s = (median(rates[n][t]) for n in ("direct", "haproxy", "sidecar"))
        print(f"{t:12} {d:10.0f} {h:10.0f} {s:10.0f} {s / h:10.2f}x {s / d:9.2f}x")
    h_cpu, s_cpu = median(cpu["haproxy"]), median(cpu["sidecar"])
    print(f"balancer CPU per request: haproxy {h_cpu * 1e6:.2f} us, sidecar {s_cpu * 1e6:.2f} us "
          f"({s_cpu / h_cpu:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
