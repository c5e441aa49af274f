"""ConfigMap change -> mounted file: how long a `kubectl apply`-style write of a changed ConfigMap takes to reach
the file a pod reads (the `..data` swap), against a real agent (process driver) in its own process; and whether
a Secret's value ever appears in that agent's log.

    python3 -m bench.config_bench [--changes 30]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.common import api_headers, percentile, start_process_agent, wait_for

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-s3cret-5e1f"
POD = f"""\
apiVersion: v1
kind: Secret
metadata: {{name: db}}
stringData: {{password: {SECRET}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: reader}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: reader
    image: python
    command: ["sleep", "3600"]
    env:
    - name: PASSWORD
      valueFrom: {{secretKeyRef: {{name: db, key: password}}}}
    volumeMounts:
    - {{name: cfg, mountPath: /etc/cfg}}
    - {{name: sec, mountPath: /etc/sec}}
  volumes:
  - {{name: cfg, configMap: {{name: app}}}}
  - {{name: sec, secret: {{secretName: db}}}}
"""


def config_map(value: int) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: app}}\ndata: {{value: '{value}'}}\n"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="meshd-config-bench-"))
    agent, api, _, state = await start_process_agent(ROOT, work)
    try:
        async with aiohttp.ClientSession() as http:
            async def post(body: str) -> None:
                async with http.post(f"http://{api}/v1/apply", data=body, headers=api_headers(state)) as response:
                    assert response.status == 200, await response.text()

            await post(config_map(0) + "---\n" + POD)
            target = state / "pod-volumes" / "default_reader" / "cfg" / "value"

            def reads(value: int) -> bool:
                try:
                    return target.read_text() == str(value)
                except OSError:
                    return False

            await wait_for(lambda: reads(0), timeout=60)
            delays = []
            for i in range(1, args.changes + 1):
                start = time.monotonic()
                await post(config_map(i))
                await wait_for(lambda i=i: reads(i), timeout=30)
                delays.append(time.monotonic() - start)
    finally:
        agent.terminate()
        await agent.wait()
    log = (work / "agent.log").read_text(errors="replace")
    shutil.rmtree(work, ignore_errors=True)
    print(f"ConfigMap change -> mounted file ({len(delays)} changes): median {statistics.median(delays):.3f} s, "
          f"p95 {percentile(delays, 0.95):.3f} s, max {max(delays):.3f} s")
    print(f"agent log: {len(log.splitlines())} lines, Secret value present: {SECRET in log}")
    sys.exit(1 if SECRET in log else 0)


if __name__ == "__main__":
    asyncio.run(main())
