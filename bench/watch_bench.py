"""Watch fan-out against a real agent process (process driver): N watchers follow the Services of a namespace
(`GET /api/v1/namespaces/default/services?watch=true`, the Kubernetes JSON stream kubectl and the clients
read), then M Services are created one request at a time; prints how long each event took from the end of its
write request to each watcher (median, p95, max over N x M deliveries), the events lost (must be 0) and the CPU
the agent spent per delivered event.

    python bench/watch_bench.py [--watchers 100] [--changes 50] [--existing 0]

`--existing N` applies N other Services first (one request), so each change is computed against a namespace
that holds more than the watched ones, as a real one does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import api_headers, percentile, start_process_agent

ROOT = Path(__file__).resolve().parent.parent


def service(name: str) -> str:
    return (f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector: {{app: {name}}}\n"
            "  ports:\n  - {name: http, port: 80, targetPort: 8080}\n")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 1/100 s


async def watcher(http: aiohttp.ClientSession, url: str, headers: dict[str, str], seen: dict[str, float],
                  ready: asyncio.Event) -> None:
    """Follows the stream, noting when each ADDED Service arrived."""
    async with http.get(url, headers=headers) as response:
        assert response.status == 200, await response.text()
        ready.set()
        async for line in response.content:
            event = json.loads(line)
            if event.get("type") == "ADDED":
                seen.setdefault(event["object"]["metadata"]["name"], time.monotonic())


async def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="meshd-watch-bench-"))
    agent, api, _, state = await start_process_agent(ROOT, work)
    headers = api_headers(state)
    try:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            if args.existing:
                text = "---\n".join(service(f"existing-{i}") for i in range(args.existing))
                async with http.post(f"http://{api}/v1/apply", data=text, headers=headers) as response:
                    assert response.status == 200, await response.text()
            async with http.get(f"http://{api}/api/v1/namespaces/default/services", headers=headers) as response:
                version = (await response.json())["metadata"]["resourceVersion"]
            url = f"http://{api}/api/v1/namespaces/default/services?watch=true&resourceVersion={version}"
            seen: list[dict[str, float]] = [{} for _ in range(args.watchers)]
            readies = [asyncio.Event() for _ in range(args.watchers)]
            tasks = [asyncio.create_task(watcher(http, url, headers, seen[i], readies[i]))
                     for i in range(args.watchers)]
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
            await asyncio.sleep(0.5)
            written: dict[str, float] = {}
            cpu_before = cpu_seconds(agent.pid)
            for i in range(args.changes):
                name = f"fan-{i}"
                async with http.post(f"http://{api}/v1/apply", data=service(name), headers=headers) as response:
                    assert response.status == 200, await response.text()
                written[name] = time.monotonic()
                await asyncio.sleep(args.gap)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(len(s) < args.changes for s in seen):
                await asyncio.sleep(0.05)
            cpu = cpu_seconds(agent.pid) - cpu_before
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        agent.terminate()
        await agent.wait()
        shutil.rmtree(work, ignore_errors=True)
    delays = [max(0.0, s[name] - at) for s in seen for name, at in written.items() if name in s]
    lost = args.watchers * args.changes - len(delays)
    print(f"{args.watchers} watchers x {args.changes} Services created one request at a time ({args.gap}s apart), "
          f"{args.existing} other Services")
    print(f"  write -> watcher: median {statistics.median(delays) * 1000:.1f} ms, "
          f"p95 {percentile(delays, 0.95) * 1000:.1f} ms, max {max(delays) * 1000:.1f} ms")
    print(f"  events delivered {len(delays)}, lost {lost}")
    print(f"  agent CPU {cpu:.2f} s for the writes and their fan-out: "
          f"{cpu / max(1, len(delays)) * 1e6:.0f} us per delivered event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between two writes")
    parser.add_argument("--existing", type=int, default=0, help="other Services in the namespace")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
