"""A rolling update under load, with and without draining, side by side in one run.

A 3-replica Deployment (maxSurge 1, maxUnavailable 0) whose replicas answer after 50 ms is rolled to a new
version while `hey` sends a steady load through the node sidecar. Retries are switched off on the Service
(`meshd.io/retries: "0"`) so what is measured is the removal order alone: with draining, a pod leaves the
registry, the sidecar finishes its in-flight requests and acknowledges, and only then is the pod stopped;
without it, the pod is stopped as soon as it leaves the registry. Prints failed requests out of all sent,
and the rollout's duration.

    python bench/rollout_bench.py [--seconds 25]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import free_port, wait_for
from meshd.agent import Agent, AgentOptions
from meshd.model.endpoints import ServiceKey

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: slow}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: slow}}}}
  strategy:
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata: {{labels: {{app: slow}}}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: app
        image: meshd/python:3.11
        imagePullPolicy: IfNotPresent
        env: [{{name: VERSION, value: "{version}"}}]
        ports: [{{name: http, containerPort: 8080}}]
        command: ["python3", "-c"]
        args:
        - |
          import os, time
          from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
          class Handler(BaseHTTPRequestHandler):
              protocol_version = "HTTP/1.1"
              def do_GET(self):
                  time.sleep(0.05)
                  body = os.environ["VERSION"].encode()
                  self.send_response(200)
                  self.send_header("Content-Length", str(len(body)))
                  self.end_headers()
                  self.wfile.write(body)
              def log_message(self, *args):
                  pass
          ThreadingHTTPServer.daemon_threads = True
          ThreadingHTTPServer(("", 8080), Handler).serve_forever()
        readinessProbe:
          tcpSocket: {{port: http}}
          periodSeconds: 0.2
---
apiVersion: v1
kind: Service
metadata:
  name: slow
  annotations: {{meshd.io/retries: "0"}}
spec:
  selector: {{app: slow}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"""


async def run(*, drain: bool, seconds: int) -> tuple[int, int, float]:
    with tempfile.TemporaryDirectory() as state:
        agent = Agent(AgentOptions(api=f"127.0.0.1:{free_port()}", dns=f"127.0.0.1:{free_port()}", state_dir=state,
                                   mdns="off", sidecar_metrics=f"127.0.0.1:{free_port()}", drain=drain))
        await agent.start()
        try:
            complete = lambda: getattr(agent.controller.progress.get(("default", "slow")), "complete", False)
            await agent.controller.apply(MANIFEST.format(version="v1"))
            await wait_for(complete)
            url = f"http://{agent.registry.service(ServiceKey('default', 'slow')).address}/"
            for _ in range(100):  # the sidecar binds the Service address
                probe = await asyncio.create_subprocess_exec("curl", "-sf", "-m", "1", url,
                                                             stdout=asyncio.subprocess.DEVNULL)
                if await probe.wait() == 0:
                    break
                await asyncio.sleep(0.1)
            load = await asyncio.create_subprocess_exec("hey", "-z", f"{seconds}s", "-c", "16", url,
                                                        stdout=asyncio.subprocess.PIPE)
            await asyncio.sleep(2)
            started = time.monotonic()
            await agent.controller.apply(MANIFEST.format(version="v2"))
            await asyncio.sleep(0.5)
            await wait_for(complete)
            duration = time.monotonic() - started
            output = (await load.communicate())[0].decode()
        finally:
            await agent.close(stop_pods=True)
    codes = {code: int(n) for code, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", output)}
    errors = sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]\s+", output.split("Error distribution:")[1], re.MULTILINE)) \
        if "Error distribution:" in output else 0
    total = sum(codes.values()) + errors
    return total - codes.get("200", 0), total, duration


async def main(seconds: int) -> None:
    rows = []
    for drain in (True, False):
        failed, total, duration = await run(drain=drain, seconds=seconds)
        rows.append((drain, failed, total, duration))
    print(f"{'draining':<10} {'failed':>8} {'sent':>8} {'failed %':>9} {'rollout s':>10}")
    for drain, failed, total, duration in rows:
        print(f"{'on' if drain else 'off':<10} {failed:>8} {total:>8} {100 * failed / max(total, 1):>8.3f}% "
              f"{duration:>10.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=25)
    asyncio.run(main(parser.parse_args().seconds))
