"""Measures, on the real Docker engine: (a) the time from a replica's container dying (docker kill) to its
replacement running, over N kills of distinct replicas (first restarts, so no backoff applies); (b) the time
to bring up 50 replicas from apply until all are ready; (c) from a container's death to its endpoint leaving
the registry stream. Prints median and p95.

    python bench/replicas_bench.py [--kills 20] [--replicas 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile, wait_for
from meshd.agent import Agent, AgentOptions
from meshd.model.endpoints import Add, Remove, ServiceKey

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: bench}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: bench}}}}
  template:
    metadata: {{labels: {{app: bench}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: meshd/busybox:latest
        imagePullPolicy: IfNotPresent
        command: ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/"]
        ports: [{{containerPort: 8080, name: http}}]
---
apiVersion: v1
kind: Service
metadata: {{name: bench}}
spec:
  selector: {{app: bench}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"""


async def main(kills: int, replicas: int) -> None:
    import docker

    from meshd.images import ensure_busybox_image

    ensure_busybox_image(docker.from_env())
    with tempfile.TemporaryDirectory() as state:
        agent = Agent(
            AgentOptions(
                api="127.0.0.1:17790", dns="127.0.0.1:18690", state_dir=state, mdns="off", sidecar=False
            )
        )
        await agent.start()
        try:
            ready = lambda: sum(1 for w in agent.controller.pods.values() if w.ready)
            started = time.monotonic()
            await agent.controller.apply(MANIFEST.format(replicas=replicas))
            await wait_for(lambda: ready() == replicas)
            bring_up = time.monotonic() - started

            removed_at: dict[str, float] = {}
            key = ServiceKey("default", "bench")

            def on_update(update) -> None:
                now = time.monotonic()
                if isinstance(update, Remove) and update.service == key:
                    for name in update.names:
                        removed_at.setdefault(name, now)
                if isinstance(update, Add) and update.service == key:
                    for ep in update.endpoints:
                        if not ep.ready:
                            removed_at.setdefault(ep.name, now)

            agent.registry.listen(on_update)
            restart, leave = [], []
            for worker in list(agent.controller.pods.values())[:kills]:
                status = worker.containers["main"]
                old = status.id
                t0 = time.monotonic()
                subprocess.run(["docker", "kill", old], check=True, capture_output=True)
                await wait_for(lambda status=status, old=old: status.id != old and status.phase == "running")
                restart.append(time.monotonic() - t0)
                if worker.name in removed_at:
                    leave.append(removed_at[worker.name] - t0)
                await wait_for(lambda worker=worker: worker.ready)
        finally:
            await agent.close(stop_pods=True)

    def line(label: str, values: list[float]) -> str:
        return (
            f"{label:<48} median {statistics.median(values) * 1000:7.1f} ms   "
            f"p95 {percentile(values, 0.95) * 1000:7.1f} ms   (n={len(values)})"
        )

    print(line("container death -> replacement running", restart))
    if leave:
        print(line("container death -> endpoint leaves the stream", leave))
    print(f"{replicas} replicas from apply to all ready: {bring_up:.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--replicas", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.kills, args.replicas))
