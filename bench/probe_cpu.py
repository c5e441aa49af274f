#!/usr/bin/env python3
"""CPU cost of probing: N ContainerProbers (HTTP readiness [+ liveness]) at periodSeconds P against a local server.

The HTTP server runs in a child process so only the prober's CPU is measured (time.process_time and
getrusage of this process, after one warm-up period). Also reports probes done, their outcomes, and the
event loop's worst lag (a 10 ms ticker), which shows whether probing ever blocks the loop.

    python bench/probe_cpu.py                       # 100 containers, period 1 s, readiness+liveness, 20 s
    python bench/probe_cpu.py --probes readiness --loop uvloop --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from meshd.metrics import REGISTRY
from meshd.model.objects import Container, ContainerPort, HTTPGetAction, Probe
from meshd.probe.worker import ContainerProber

SERVER = r"""
import asyncio, sys
try:
    import uvloop; uvloop.install()
except ImportError:
    pass
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
class P(asyncio.Protocol):
    def connection_made(self, t): self.t, self.buf = t, b""
    def data_received(self, d):
        self.buf += d
        if b"\r\n\r\n" in self.buf:
            self.t.write(RESPONSE); self.t.close()
async def main():
    srv = await asyncio.get_running_loop().create_server(P, "127.0.0.1", 0, backlog=1024)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def probe_total() -> dict[str, float]:
    out: dict[str, float] = {}
    for kind in ("liveness", "readiness"):
        for result in ("success", "failure", "error"):
            out[f"{kind}/{result}"] = (
                REGISTRY.get_sample_value("meshd_probe_total", {"probe": kind, "result": result}) or 0.0
            )
    return out


async def lag_ticker(stop: asyncio.Event, worst: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t0 = loop.time()
        await asyncio.sleep(0.01)
        worst[0] = max(worst[0], loop.time() - t0 - 0.01)


async def run(args: argparse.Namespace, port: int) -> dict[str, object]:
    kinds = args.probes.split(",")
    probe = Probe(HTTPGetAction(port="http", path="/healthz"), period_seconds=args.period, timeout_seconds=1)
    rng = random.Random(1)
    probers = []
    for i in range(args.containers):
        c = Container(
            f"c{i}",
            "img",
            ports=(ContainerPort(port, name="http"),),
            readiness_probe=probe if "readiness" in kinds else None,
            liveness_probe=probe if "liveness" in kinds else None,
        )
        probers.append(ContainerProber(c, host="127.0.0.1", rng=rng, name=f"c{i}"))
    for p in probers:
        p.start()
    await asyncio.sleep(args.period * 1.5)  # warm-up: every first (jittered) probe has run
    ready = sum(p.ready for p in probers)
    stop, worst = asyncio.Event(), [0.0]
    ticker = asyncio.create_task(lag_ticker(stop, worst))
    before_counts = probe_total()
    ru0, cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.process_time(), time.monotonic()
    await asyncio.sleep(args.duration)
    ru1, cpu1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.process_time(), time.monotonic()
    after_counts = probe_total()
    stop.set()
    await ticker
    await asyncio.gather(*(p.stop() for p in probers))
    wall = wall1 - wall0
    cpu = cpu1 - cpu0
    counts = {
        k: after_counts[k] - before_counts[k] for k in after_counts if after_counts[k] - before_counts[k]
    }
    done = sum(counts.values())
    return {
        "containers": args.containers,
        "probes_per_container": len(kinds),
        "period_s": args.period,
        "loop": args.loop,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 3),
        "user_s": round(ru1.ru_utime - ru0.ru_utime, 3),
        "sys_s": round(ru1.ru_stime - ru0.ru_stime, 3),
        "cpu_percent_of_one_core": round(100 * cpu / wall, 2),
        "probes": int(done),
        "probes_per_s": round(done / wall, 1),
        "cpu_us_per_probe": round(1e6 * cpu / done, 1) if done else None,
        "ready_after_warmup": ready,
        "results": counts,
        "worst_loop_lag_ms": round(worst[0] * 1000, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--containers", type=int, default=100)
    ap.add_argument("--period", type=float, default=1.0)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--probes", default="readiness,liveness", help="comma list of readiness,liveness")
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = ap.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        if args.loop == "uvloop":
            import uvloop

            result = uvloop.run(run(args, port))
        else:
            result = asyncio.run(run(args, port))
    finally:
        server.terminate()
        server.wait()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
