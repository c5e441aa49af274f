"""The state store under a big request, against a real agent process (process driver): 2,000 Services applied
in one request, then deleted in one request, with a DNS client asking the agent for a Service's name every
10 ms throughout; prints each request's time, the DNS answers and timeouts while it ran, the bytes the agent
wrote and the state dir's growth; then the latency of listing N pods. With --baseline, the same run against
another source tree (e.g. the JSON state file before the store) side by side, with ratios.

    python bench/store_bench.py [--services 2000] [--pods 1000] [--baseline DIR]

A baseline tree: git archive 93ad975 | tar -x -C /tmp/meshd-json   (main before the store)
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import dns.exception
import dns.message
import dns.query
import dns.rcode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import api_headers, percentile, start_process_agent

ROOT = Path(__file__).resolve().parent.parent
PODS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: many}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: many}}
  template:
    metadata: {labels: {app: many}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: busybox, command: [sleep, "3600"]}
"""


def services(count: int) -> str:
    return "---\n".join(
        f"apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\nspec:\n  selector: {{app: a{i}}}\n"
        f"  ports:\n  - {{name: http, port: 80, targetPort: 8080}}\n" for i in range(count))


class DnsLoop(threading.Thread):
    """A resolver asking for one name every 10 ms (UDP, 2 s timeout), in its own thread."""

    def __init__(self, port: int, name: str) -> None:
        super().__init__(daemon=True)
        self.port, self.name = port, name
        self.results: list[tuple[float, bool]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            sent = time.monotonic()
            try:
                reply = dns.query.udp(dns.message.make_query(self.name, "A"), "127.0.0.1", port=self.port, timeout=2)
                ok = reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)
            except dns.exception.Timeout:
                ok = False
            self.results.append((sent, ok))
            time.sleep(0.01)

    def during(self, start: float, end: float) -> tuple[int, int]:
        window = [ok for sent, ok in self.results if start <= sent <= end]
        return sum(window), len(window) - sum(window)


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def written(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


async def run(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="meshd-store-bench-"))
    agent, api, dns_port, state = await start_process_agent(tree, work)
    figures: dict[str, Any] = {}
    resolver = DnsLoop(dns_port, "steady-0.default.svc.cluster.local")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
            async def post(path: str, body: str) -> None:
                async with http.post(f"http://{api}{path}", data=body, headers=api_headers(state)) as response:
                    assert response.status == 200, await response.text()

            await post("/v1/apply", services(1).replace("svc-", "steady-"))
            resolver.start()
            await asyncio.sleep(0.5)
            text = services(args.services)
            for phase, path in (("apply", "/v1/apply"), ("delete", "/v1/delete")):
                size, wrote = dir_size(state), written(agent.pid)
                start = time.monotonic()
                await post(path, text)
                end = time.monotonic()
                await asyncio.sleep(0.3)
                figures[f"{phase} s"] = end - start
                figures[f"{phase}: DNS answers"], figures[f"{phase}: DNS timeouts"] = resolver.during(start, end)
                figures[f"{phase}: written MB"] = (written(agent.pid) - wrote) / 1e6
                figures[f"{phase}: state dir growth MB"] = (dir_size(state) - size) / 1e6
            if args.pods:
                await post("/v1/apply", PODS.replace("REPLICAS", str(args.pods)))
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:
                    async with http.get(f"http://{api}/api/v1/pods", headers=api_headers(state)) as response:
                        if len((await response.json())["items"]) >= args.pods:
                            break
                    await asyncio.sleep(1)
                latencies = []
                for _ in range(20):
                    start = time.monotonic()
                    async with http.get(f"http://{api}/api/v1/pods", headers=api_headers(state)) as response:
                        count = len((await response.json())["items"])
                    latencies.append(time.monotonic() - start)
                figures[f"list {count} pods: median ms"] = statistics.median(latencies) * 1000
                figures[f"list {count} pods: p95 ms"] = percentile(latencies, 0.95) * 1000
                async with http.delete(f"http://{api}/apis/apps/v1/namespaces/default/deployments/many",
                                       headers=api_headers(state)):
                    pass
                while time.monotonic() < deadline:
                    async with http.get(f"http://{api}/api/v1/pods", headers=api_headers(state)) as response:
                        if not (await response.json())["items"]:
                            break
                    await asyncio.sleep(1)
    finally:
        resolver.done.set()
        agent.terminate()
        await agent.wait()
        shutil.rmtree(work, ignore_errors=True)
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=2000)
    parser.add_argument("--pods", type=int, default=1000, help="pods to list (0: skip)")
    parser.add_argument("--baseline", type=Path, help="another meshd source tree to run the same way")
    args = parser.parse_args()
    runs = {"store": await run(ROOT, args)}
    if args.baseline:
        runs["baseline"] = await run(args.baseline, args)
    names = list(runs)
    print(f"{'':36}" + "".join(f"{n:>14}" for n in names) + ("   baseline/store" if len(names) > 1 else ""))
    for key in runs["store"]:
        values = [runs[n].get(key) for n in names]
        cells = "".join(f"{v:>14.2f}" if isinstance(v, float) else f"{v!s:>14}" for v in values)
        ratio = ""
        if len(values) > 1 and isinstance(values[0], float) and isinstance(values[1], float) and values[0] > 0 \
                and key.endswith((" s", " MB", " ms")):
            ratio = f"   {values[1] / values[0]:.1f}x"
        print(f"{key:36}{cells}{ratio}")


if __name__ == "__main__":
    asyncio.run(main())
