"""Scaling a Deployment with the process driver on a standalone agent: the time from `scale --replicas N` until
the N pods are Ready (as the controller counts them), until the API lists N pods Running and Ready, and from a
scale to 0 until the API lists none; and whether the store holds the pods (Pod objects) and Events. Runs against
this tree (or another one: run it with that tree on PYTHONPATH, e.g. main's, to compare).

    python bench/scale_bench.py [--replicas 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import free_port, wait_for  # noqa: E402
from meshd.agent import Agent, AgentOptions  # noqa: E402

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: scale}
spec:
  replicas: 1
  selector: {matchLabels: {app: scale}}
  template:
    metadata: {labels: {app: scale}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        command: ["sleep", "3600"]
"""


async def main(replicas: int, rounds: int) -> None:
    import aiohttp

    ups, lists, downs = [], [], []
    with tempfile.TemporaryDirectory() as state:
        api = f"127.0.0.1:{free_port()}"
        agent = Agent(AgentOptions(api=api, dns=f"127.0.0.1:{free_port()}", state_dir=state, mdns="off",
                                   sidecar=False, driver="process", host_names="off"))
        await agent.start()
        headers = {"Authorization": f"Bearer {(Path(state) / 'token').read_text().strip()}"}
        session = aiohttp.ClientSession(headers=headers)
        listed: list[dict] = []

        async def list_pods() -> list[dict]:
            async with session.get(f"http://{api}/api/v1/namespaces/default/pods") as response:
                return (await response.json())["items"]

        async def listed_ready(n: int) -> None:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                listed[:] = await list_pods()
                ready = [p for p in listed if p["status"]["phase"] == "Running" and any(
                    c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])
                    and not p["metadata"].get("deletionTimestamp")]
                if len(ready) == n and len(listed) == n:
                    return
                await asyncio.sleep(0.02)
            raise TimeoutError(f"the API did not list {n} ready pods")

        try:
            c = agent.controller
            await c.apply(MANIFEST)
            await listed_ready(1)
            for _ in range(rounds):
                t0 = time.monotonic()
                await c.scale("Deployment", "default", "scale", replicas)
                await wait_for(lambda: sum(1 for w in c.pods.values() if w.ready and not w.terminating) == replicas,
                               timeout=300, interval=0.01)
                ups.append(time.monotonic() - t0)
                await listed_ready(replicas)
                lists.append(time.monotonic() - t0)
                stored_pods = len(c.store.list("Pod"))
                t0 = time.monotonic()
                await c.scale("Deployment", "default", "scale", 0)
                await listed_ready(0)
                downs.append(time.monotonic() - t0)
            stored_events = len(c.store.list("Event"))
        finally:
            await session.close()
            await agent.close(stop_pods=True)
    print(f"scale 0 -> {replicas}, all Ready (controller): median {statistics.median(ups):.2f} s  {ups}")
    print(f"scale 0 -> {replicas}, API lists all Ready:    median {statistics.median(lists):.2f} s")
    print(f"scale {replicas} -> 0, API lists none:         median {statistics.median(downs):.2f} s")
    print(json.dumps({"pod_objects_at_full_scale": stored_pods, "event_objects": stored_events}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.replicas, args.rounds))
