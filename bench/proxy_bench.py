#!/usr/bin/env python3
"""Side-by-side proxy benchmark: nginx, HAProxy and meshd-sidecar balancing the same two backends.

In one run: two nginx backends (small static response), then each balancer in turn in front of them
(keep-alive upstreams, one worker/thread each), driven by `wrk` (throughput, p50/p99, proxy CPU per request
from /proc/PID/stat), then by `hey` at a fixed 2,000 requests/s in interleaved rounds with a backend hit
directly (p50/p90/p99/p99.9, each minus direct's in the same round); finally the RSS of a sidecar holding
100 Services x 10 endpoints from a fake agent stream.

    python bench/proxy_bench.py [--duration 10] [--connections 50] [--threads 2] [--workers 1] [--rounds 3] [--pin]
    python bench/proxy_bench.py --latency-only --pin --rt [--latency-rounds 6]   # the latency part alone

Not a test: it prints a table and the ratios to nginx (the goals of issue 5: >= 0.8x nginx throughput,
<= 1.3x nginx CPU per request, added p99 <= 1.5x nginx's, RSS < 60 MB).
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent / "proxy"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def proc_tree(pid: int) -> list[int]:
    """pid and its children (nginx master + workers)."""
    pids = [pid]
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], check=False, capture_output=True, text=True).stdout
        pids += [int(p) for p in out.split()]
    except FileNotFoundError:
        pass
    return pids


def cpu_seconds(pids: list[int], *, user_only: bool = False) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + (0 if user_only else int(fields[12]))  # utime, stime
        except (FileNotFoundError, IndexError):
            pass
    return total / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def _dur(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


@dataclass
class WrkResult:
    rps: float
    p50: float
    p99: float
    errors: int


# wrk script for --vary: every request head differs (a request id), as from clients that send one
VARY_REQUESTS = """
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/", {["X-Request-Id"] = tostring(n)})
end
"""


def run_wrk(
    port: int, *, duration: int, threads: int, connections: int, pin: list[str] | None = None,
    script: Path | None = None,
) -> WrkResult:
    out = subprocess.run(
        [*(pin or []), "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
         *(["-s", str(script)] if script else []), f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _dur(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _dur(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errs += sum(int(x) for x in m.groups())
    return WrkResult(rps, p50, p99, errs)


PCTS = (50.0, 90.0, 99.0, 99.9)


def pct(ordered: list[float], q: float, step: float = 1e-4) -> float:
    """Percentile (q in 0-100) of sorted values that hey rounded to `step` (0.1 ms): the rank is located in
    its rounding bin [v - step/2, v + step/2) and interpolated linearly within it, as Prometheus'
    histogram_quantile does; without this every figure would be a multiple of 0.1 ms."""
    n = len(ordered)
    if not n:
        return float("nan")
    rank = q / 100 * n
    v = ordered[max(0, min(n - 1, math.ceil(rank) - 1))]
    below = bisect.bisect_left(ordered, v - step / 2)
    inside = bisect.bisect_right(ordered, v + step / 2) - below
    return v - step / 2 + step * min(1.0, max(0.0, (rank - below) / inside))


def run_hey_rate(
    port: int, *, rate: int, duration: int, workers: int = 20, trim: float = 1.0, pin: list[str] | None = None
) -> dict[str, float]:
    """Latency percentiles (seconds) at a fixed rate: `hey -q` is per worker, so 20 workers at rate/20 each.
    From hey's per-request CSV (0.1 ms resolution), without the first `trim` seconds (connection set-up);
    also the sample count, non-200 responses and the rate achieved."""
    out = subprocess.run(
        [*(pin or []), "hey", "-z", f"{duration}s", "-c", str(workers), "-q", str(rate / workers), "-o", "csv",
         f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    times: list[float] = []
    errors = total = 0
    for line in out.splitlines()[1:]:
        f = line.split(",")
        if len(f) < 8:
            continue
        total += 1
        if f[6] != "200":
            errors += 1
        elif float(f[7]) >= trim:
            times.append(float(f[0]))
    times.sort()
    res = {f"p{q:g}": pct(times, q) for q in PCTS}
    res.update(n=len(times), errors=errors, rate=total / duration)
    return res


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], **kw) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
        with open(self.tmp / f"{Path(args[0]).name}-{len(self.procs)}.log", "wb") as log:
            proc = subprocess.Popen(args, stdout=kw.pop("stdout", log), stderr=log, **kw)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)


NGINX_BACKENDS = """
worker_processes 1; daemon off; pid {tmp}/backends.pid; error_log {tmp}/backends.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{b1}; location / {{ {vary}return 200 "hello from b1\\n"; }} }}
  server {{ listen 127.0.0.1:{b2}; location / {{ {vary}return 200 "hello from b2\\n"; }} }}
}}
"""
NGINX_LB = """
worker_processes 1; daemon off; pid {tmp}/lb.pid; error_log {tmp}/lb.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  upstream backends {{ server 127.0.0.1:{b1}; server 127.0.0.1:{b2}; keepalive 64; keepalive_requests 1000000; }}
  server {{ listen 127.0.0.1:{port};
    location / {{ proxy_pass http://backends; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; }} }}
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
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:{port}
  default_backend be
backend be
  balance roundrobin
  server b1 127.0.0.1:{b1}
  server b2 127.0.0.1:{b2}
"""


def median(values: list[float]) -> float:
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def latency_rounds(
    targets: dict[str, int], *, rounds: int, rate: int, duration: int, trim: float, pin: list[str] | None
) -> dict[str, list[dict[str, float]]]:
    """Interleaved rounds of `hey` at a fixed rate over every target (a backend directly, then each balancer);
    each round starts one target further on (direct, nginx, haproxy, sidecar; nginx, haproxy, sidecar,
    direct; ...), so no target always follows the same one. Per round and target: p50/p90/p99/p99.9 and,
    for the balancers, each minus the same percentile of hitting the backend directly in that round."""
    names = list(targets)
    for name in names:  # warm-up: the balancers' upstream pools, the page cache, hey itself
        run_hey_rate(targets[name], rate=rate, duration=2, trim=0.0, pin=pin)
    out: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            out[name].append(run_hey_rate(targets[name], rate=rate, duration=duration, trim=trim, pin=pin))
        direct = out["direct"][-1]
        for name in names:
            res = out[name][-1]
            if name != "direct":
                res.update({f"add_p{q:g}": res[f"p{q:g}"] - direct[f"p{q:g}"] for q in PCTS})
            pcts = " ".join(f"p{q:g} {res[f'p{q:g}'] * 1e3:5.2f}" for q in PCTS)
            added = "" if name == "direct" else "  added " + " ".join(
                f"{res[f'add_p{q:g}'] * 1e3:+5.2f}" for q in PCTS
            )  # fmt: skip
            print(f"latency round {r + 1} {name:10s} {pcts} ms{added}  n {int(res['n'])} "
                  f"{res['rate']:.0f}/s errors {int(res['errors'])}", flush=True)  # fmt: skip
    return out


def print_latency(lat: dict[str, list[dict[str, float]]], *, rate: int, duration: int, trim: float) -> None:
    rounds = len(lat["direct"])
    print(f"\nlatency at {rate} req/s (hey -c 20 -q {rate / 20:g}, {duration} s per run, first {trim:g} s dropped; interpolated in hey's 0.1 ms steps),"
          f" {rounds} interleaved rounds; medians over the rounds (min-max); 'added' = minus direct, same round")  # fmt: skip
    print(f"{'target':12s} " + " ".join(f"{'p' + format(q, 'g') + ' ms':>18s}" for q in PCTS)
          + " " + " ".join(f"{'+p' + format(q, 'g') + ' ms':>18s}" for q in PCTS))  # fmt: skip
    for name, runs in lat.items():
        cells = []
        for key in [f"p{q:g}" for q in PCTS] + [f"add_p{q:g}" for q in PCTS]:
            vals = [run[key] * 1e3 for run in runs if key in run]
            cells.append(f"{median(vals):6.2f} ({min(vals):5.2f}-{max(vals):5.2f})" if vals else f"{'':>18s}")
        print(f"{name:12s} " + " ".join(f"{c:>18s}" for c in cells))
    if "nginx" in lat:
        base = lat["nginx"]
        for name, runs in lat.items():
            if name in ("direct", "nginx"):
                continue
            for q in (99.0, 99.9):
                key = f"add_p{q:g}"
                mine, theirs = median([r[key] for r in runs]), median([r[key] for r in base])
                # a ratio of two differences near zero means nothing: below 0.1 ms (hey's step) it is not given
                ratio = f"{mine / theirs:.2f}x" if theirs >= 1e-4 else "ratio n/a (nginx adds < 0.1 ms)"
                diff = median([a[key] - b[key] for a, b in zip(runs, base, strict=True)])
                per = " ".join(
                    f"{a[key] * 1e3:.2f}/{b[key] * 1e3:.2f}" for a, b in zip(runs, base, strict=True)
                )
                print(f"{name}: added p{q:g} {mine * 1e3:.2f} ms vs nginx {theirs * 1e3:.2f} ms: {ratio}, "
                      f"median per-round difference {diff * 1e3:+.2f} ms (per round {name}/nginx ms: {per})")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--rate", type=int, default=2000)
    p.add_argument("--rate-duration", type=int, default=10, help="seconds per hey run at --rate")
    p.add_argument("--latency-rounds", type=int, default=5, help="interleaved hey rounds at --rate")
    p.add_argument("--trim", type=float, default=1.0, help="seconds dropped at the start of each hey run")
    p.add_argument(
        "--latency-only", action="store_true",
        help="only the latency rounds at --rate (no wrk, no memory); --workers defaults to 1",
    )  # fmt: skip
    p.add_argument(
        "--rounds", type=int, default=3, help="wrk runs per balancer, interleaved (medians reported)"
    )
    p.add_argument(
        "--workers", default="", help="meshd-sidecar --workers values to run (comma list; default 1,2)"
    )
    p.add_argument("--only", default="", help="comma list of nginx,haproxy,sidecar (default all)")
    p.add_argument(
        "--compare-root", default="",
        help="also run the sidecar (1 worker) from this directory (another checkout), as 'sidecar-base'",
    )  # fmt: skip
    p.add_argument(
        "--rt", action="store_true",
        help="latency rounds under SCHED_FIFO (chrt -f 10: hey, the backends, every balancer), so other "
        "processes on the machine cannot hold a CPU the measured ones wait for",
    )  # fmt: skip
    p.add_argument(
        "--vary", action="store_true",
        help="every request head (wrk script: a request id) and response head (the backends add one) differs, "
        "so the sidecar's fast paths for repeated heads never apply: the general path is measured",
    )  # fmt: skip
    p.add_argument(
        "--pin", action="store_true",
        help="pin wrk/hey and the backends to CPU 0 and each one-worker balancer to CPU 1 (taskset)",
    )  # fmt: skip
    args = p.parse_args()
    if not args.workers:
        args.workers = "1" if args.latency_only else "1,2"
    for tool in (
        ("wrk", "hey", "nginx", "haproxy")
        + (("taskset",) if args.pin else ())
        + (("chrt",) if args.rt else ())
    ):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed")
    tmp = Path(tempfile.mkdtemp(prefix="meshd-proxy-bench-"))
    stack = Stack(tmp)
    b1, b2 = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=f"{ROOT}:{os.environ.get('PYTHONPATH', '')}")
    pin_clients = ["taskset", "-c", "0"] if args.pin else []
    pin_balancer = ["taskset", "-c", "1"] if args.pin else []
    if args.vary:
        (tmp / "vary.lua").write_text(VARY_REQUESTS)
    wrk = partial(run_wrk, pin=pin_clients, script=tmp / "vary.lua" if args.vary else None)
    # name -> (port, pid whose process tree is the balancer)
    balancers: dict[str, tuple[int, int]] = {}
    runs: dict[str, list[dict[str, float]]] = {}
    results: dict[str, dict[str, float]] = {}
    lat: dict[str, list[dict[str, float]]] = {}
    mem = float("nan")
    try:
        vary = "add_header X-Request-Id $request_id; " if args.vary else ""
        (tmp / "backends.conf").write_text(NGINX_BACKENDS.format(tmp=tmp, b1=b1, b2=b2, vary=vary))
        stack.start(
            pin_clients + ["nginx", "-c", str(tmp / "backends.conf"), "-e", str(tmp / "backends.err")]
        )
        wait_port(b1)
        wait_port(b2)
        print(f"backends on {b1},{b2}", flush=True)

        # every balancer runs for the whole benchmark (idle ones cost nothing); the wrk runs alternate between
        # them, so a change in the machine's load hits all of them alike
        only = set(filter(None, args.only.split(","))) or {"nginx", "haproxy", "sidecar"}
        if "nginx" in only:
            port = free_port()
            (tmp / "lb.conf").write_text(NGINX_LB.format(tmp=tmp, b1=b1, b2=b2, port=port))
            proc = stack.start(
                pin_balancer + ["nginx", "-c", str(tmp / "lb.conf"), "-e", str(tmp / "lb.err")]
            )
            wait_port(port)
            balancers["nginx"] = (port, proc.pid)
        if "haproxy" in only:
            port = free_port()
            (tmp / "haproxy.cfg").write_text(HAPROXY.format(b1=b1, b2=b2, port=port))
            proc = stack.start(pin_balancer + ["haproxy", "-db", "-f", str(tmp / "haproxy.cfg")])
            wait_port(port)
            balancers["haproxy"] = (port, proc.pid)
        if "sidecar" in only:
            config = [
                {
                    "service": {"namespace": "default", "name": "web", "address": None,
                                "ports": [{"name": "http", "port": 80, "targetPort": "http"}], "annotations": {}},
                    "endpoints": [{"name": f"b{i}", "address": "127.0.0.1", "ports": {"http": bp}, "ready": True}
                                  for i, bp in enumerate((b1, b2))],
                }
            ]  # fmt: skip
            (tmp / "services.json").write_text(json.dumps(config))
            agent_port = free_port()
            stack.start(
                [sys.executable, str(HERE / "fake_agent.py"), "--listen", f"127.0.0.1:{agent_port}",
                 "--config", str(tmp / "services.json")], env=env,
            )  # fmt: skip
            wait_port(agent_port)
            for workers in [int(w) for w in args.workers.split(",")]:
                port = free_port()
                sidecar = stack.start(
                    (pin_balancer if workers == 1 else [])
                    + [sys.executable, "-m", "sidecar", "--api", f"127.0.0.1:{agent_port}", "--listen",
                       f"127.0.0.1:{port}", "--service", "default/web", "--metrics", f"127.0.0.1:{free_port()}",
                       "--workers", str(workers), "--log-level", "WARNING"], env=env,
                )  # fmt: skip
                wait_port(port)
                time.sleep(0.5 + 0.5 * workers)
                balancers["sidecar" if workers == 1 else f"sidecar-w{workers}"] = (port, sidecar.pid)
            if args.compare_root:
                port = free_port()
                root = Path(args.compare_root).resolve()
                sidecar = stack.start(
                    pin_balancer
                    + [sys.executable, "-m", "sidecar", "--api", f"127.0.0.1:{agent_port}", "--listen",
                       f"127.0.0.1:{port}", "--service", "default/web", "--metrics", f"127.0.0.1:{free_port()}",
                       "--log-level", "WARNING"],
                    env=dict(env, PYTHONPATH=f"{root}:{os.environ.get('PYTHONPATH', '')}"), cwd=root,
                )  # fmt: skip
                wait_port(port)
                time.sleep(1.0)
                balancers["sidecar-base"] = (port, sidecar.pid)

        if not args.latency_only:
            for name, (port, _) in balancers.items():
                wrk(port, duration=1, threads=1, connections=10)  # warm-up (and workers are up now)
                runs[name] = []
            for round_ in range(args.rounds):
                for name, (port, root_pid) in balancers.items():
                    pids = proc_tree(root_pid)
                    c0, u0 = cpu_seconds(pids), cpu_seconds(pids, user_only=True)
                    r = wrk(port, duration=args.duration, threads=args.threads, connections=args.connections)
                    cpu, user = cpu_seconds(pids) - c0, cpu_seconds(pids, user_only=True) - u0
                    requests = r.rps * args.duration
                    run = {"rps": r.rps, "p50": r.p50, "p99": r.p99, "errors": r.errors,
                           "cpu_us": cpu / requests * 1e6 if requests else float("nan"),
                           "user_us": user / requests * 1e6 if requests else float("nan")}  # fmt: skip
                    runs[name].append(run)
                    print(f"round {round_ + 1} {name:12s} {r.rps:9.0f} req/s  p50 {r.p50 * 1e3:.2f} ms  "
                          f"p99 {r.p99 * 1e3:.2f} ms  cpu {run['cpu_us']:.1f} us/req (user {run['user_us']:.1f})  "
                          f"errors {r.errors}", flush=True)  # fmt: skip
            for name in balancers:
                results[name] = {
                    k: median([run[k] for run in runs[name]])
                    for k in ("rps", "p50", "p99", "cpu_us", "user_us")
                }
                results[name]["errors"] = sum(run["errors"] for run in runs[name])
                if "nginx" in runs:  # the ratio to nginx in each round (same moment), then their median
                    for k in ("rps", "cpu_us", "user_us"):
                        results[name][k + "_ratio"] = median(
                            [run[k] / base[k] for run, base in zip(runs[name], runs["nginx"], strict=True)]
                        )

        # latency at a fixed rate: the balancers and a backend directly, interleaved rounds
        if args.latency_rounds > 0:
            targets = {"direct": b1, **{name: port for name, (port, _) in balancers.items()}}
            if args.rt:  # the backends and balancers (every thread of their process trees), and hey below
                for pid in proc_tree(stack.procs[0].pid) + [
                    p for _, root in balancers.values() for p in proc_tree(root)
                ]:
                    subprocess.run(
                        ["chrt", "-a", "-f", "-p", "10", str(pid)], check=True, capture_output=True
                    )
            lat = latency_rounds(
                targets, rounds=args.latency_rounds, rate=args.rate, duration=args.rate_duration,
                trim=args.trim, pin=pin_clients + (["chrt", "-f", "10"] if args.rt else []),
            )  # fmt: skip
        for proc in reversed(stack.procs[1:]):
            stack.stop(proc)

        # memory: 100 Services x 10 endpoints, node mode (binds 127.216.x.y:18090)
        if "sidecar" in only and not args.latency_only:
            agent_port = free_port()
            agent = stack.start(
                [sys.executable, str(HERE / "fake_agent.py"), "--listen", f"127.0.0.1:{agent_port}",
                 "--generate", "100x10"], env=env,
            )  # fmt: skip
            wait_port(agent_port)
            mport = free_port()
            sidecar = stack.start(
                [sys.executable, "-m", "sidecar", "--api", f"127.0.0.1:{agent_port}", "--metrics",
                 f"127.0.0.1:{mport}", "--log-level", "WARNING"], env=env,
            )  # fmt: skip
            wait_port(mport)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics").read().decode()
                if text.count("meshd_sidecar_endpoints{service=") >= 200:
                    break
                time.sleep(0.3)
            time.sleep(1.0)
            services = len(set(re.findall(r'meshd_sidecar_endpoints\{service="([^"]+)"', text)))
            mem = rss_mb(sidecar.pid)
            print(f"sidecar RSS with {services} Services x 10 endpoints: {mem:.1f} MB", flush=True)
            stack.stop(sidecar)
            stack.stop(agent)
    finally:
        stack.stop_all()

    print()
    pinned = "; pinned: wrk/hey+backends CPU 0, one-worker balancers CPU 1" if args.pin else ""
    if results:
        print(
            f"medians of {args.rounds} interleaved rounds; 'x nginx' = median of the per-round ratios{pinned}"
        )
        print(f"{'proxy':12s} {'req/s':>9s} {'x nginx':>8s} {'p50 ms':>7s} {'p99 ms':>7s} {'us/req':>7s} "
              f"{'x nginx':>8s} {'user us':>8s} {'x nginx':>8s} {'errors':>7s}")  # fmt: skip
        for name, res in results.items():
            nan = float("nan")
            print(f"{name:12s} {res['rps']:9.0f} {res.get('rps_ratio', nan):8.2f} {res['p50'] * 1e3:7.2f} "
                  f"{res['p99'] * 1e3:7.2f} {res['cpu_us']:7.1f} {res.get('cpu_us_ratio', nan):8.2f} {res['user_us']:8.1f} "
                  f"{res.get('user_us_ratio', nan):8.2f} {int(res['errors']):7d}")  # fmt: skip
    if lat:
        print_latency(lat, rate=args.rate, duration=args.rate_duration, trim=args.trim)
        if pinned and not results:
            print(pinned[2:])
        if args.rt:
            print("latency rounds under SCHED_FIFO 10 (hey, backends, balancers)")
    if not math.isnan(mem):
        print(f"sidecar RSS (100 Services, 1,000 endpoints): {mem:.1f} MB (goal < 60 MB)")
    print(f"logs in {tmp}")


if __name__ == "__main__":
    main()
