"""Measures, on the real Docker engine, how fast readiness reaches the registry stream (what DNS, mDNS and the
sidecars follow): from a readiness failure starting (the health file removed inside the container) to the
endpoint turning unready in the stream, with `periodSeconds: 0.2, failureThreshold: 1`; and from a container
dying (docker kill) to its endpoint leaving the ready set. Median and p95 over N trials.

    python bench/readiness_bench.py [--trials 20]
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
metadata: {name: probe}
spec:
  replicas: 1
  selector: {matchLabels: {app: probe}}
  template:
    metadata: {labels: {app: probe}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: meshd/busybox:latest
        imagePullPolicy: IfNotPresent
        command: ["/bin/sh", "-c", "mkdir -p /www && echo ok > /www/ready && exec httpd -f -p 8080 -h /www"]
        ports: [{containerPort: 8080, name: http}]
        readinessProbe:
          httpGet: {path: /ready, port: http}
          periodSeconds: 0.2
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {name: probe}
spec:
  selector: {app: probe}
  ports: [{name: http, port: 80, targetPort: http}]
"""
KEY = ServiceKey("default", "probe")


async def main(trials: int) -> None:
    with tempfile.TemporaryDirectory() as state:
        # one pod is killed again and again: no crash-loop backoff, so every trial measures the same path
        agent = Agent(AgentOptions(api="127.0.0.1:17791", dns="127.0.0.1:18691", state_dir=state, mdns="off",
                                   sidecar=False, backoff_initial=0.01, backoff_max=0.01))
        await agent.start()
        unready_at: list[float] = []

        def on_update(update) -> None:
            if isinstance(update, Remove) and update.service == KEY or (
                    isinstance(update, Add) and update.service == KEY and not all(e.ready for e in update.endpoints)):
                unready_at.append(time.monotonic())

        agent.registry.listen(on_update)
        ready = lambda: agent.registry.ready_endpoints(KEY)
        try:
            await agent.controller.apply(MANIFEST)
            await wait_for(ready)
            flips, deaths = [], []
            for _ in range(trials):
                worker = next(iter(agent.controller.pods.values()))
                container = worker.containers["web"].id
                unready_at.clear()
                started = time.monotonic()
                subprocess.run(["docker", "exec", container, "rm", "/www/ready"], check=True)
                await wait_for(lambda: unready_at)
                flips.append(unready_at[0] - started)
                subprocess.run(["docker", "exec", container, "sh", "-c", "echo ok > /www/ready"], check=True)
                await wait_for(ready)
            for _ in range(trials):
                worker = next(iter(agent.controller.pods.values()))
                status = worker.containers["web"]
                old = status.id
                unready_at.clear()
                started = time.monotonic()
                subprocess.run(["docker", "kill", old], check=True, capture_output=True)
                await wait_for(lambda: unready_at)
                deaths.append(unready_at[0] - started)
                await wait_for(lambda status=status, old=old: status.id != old and ready())
        finally:
            await agent.close(stop_pods=True)

    def line(label: str, values: list[float]) -> str:
        return (f"{label:<58} median {statistics.median(values) * 1000:7.1f} ms   "
                f"p95 {percentile(values, 0.95) * 1000:7.1f} ms   (n={len(values)})")

    print(line("readiness failure (period 0.2 s, threshold 1) -> unready", flips))
    print(line("container death (docker kill) -> endpoint unready", deaths))
    print("(the readiness figure includes `docker exec rm`, ~50-100 ms of it; Kubernetes' defaults take 30 s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    asyncio.run(main(parser.parse_args().trials))
