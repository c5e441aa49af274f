"""Soak: steady HTTP load through the node sidecar while replicas are killed and the agent and the sidecar are
restarted, printing the agent's and the sidecar's RSS and fds and the failed requests over time.

    python bench/soak.py                      # an hour
    python bench/soak.py --duration 300       # five minutes

A `meshd agent --driver process` runs a 3-replica web Deployment behind a Service (the sidecar's default two
retries). Every --kill-every seconds one replica's process group gets SIGKILL; every --sidecar-every seconds
the sidecar gets SIGKILL (the agent restarts it); every --agent-every seconds the agent gets SIGKILL and a new
one adopts the pods and the sidecar. Goal: 0 failed requests, and RSS and fds that do not grow.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port

SERVER = ("import http.server, os\\n"
          "class H(http.server.BaseHTTPRequestHandler):\\n"
          "    protocol_version = 'HTTP/1.1'\\n"
          "    def do_GET(self):\\n"
          "        body = os.environ['POD_NAME'].encode()\\n"
          "        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers()\\n"
          "        self.wfile.write(body)\\n"
          "    def log_message(self, *a): pass\\n"
          "http.server.ThreadingHTTPServer((os.environ['POD_IP'], 8080), H).serve_forever()")

MANIFEST = textwrap.dedent("""\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: soak}
    spec:
      replicas: 3
      selector: {matchLabels: {app: soak}}
      template:
        metadata: {labels: {app: soak}}
        spec:
          terminationGracePeriodSeconds: 2
          containers:
          - name: web
            image: python
            command: ["%s", "-c", "%s"]
            env: [{name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
            ports: [{containerPort: 8080, name: http}]
            readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 0.5, failureThreshold: 1}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: soak}
    spec:
      selector: {app: soak}
      ports: [{name: http, port: 80, targetPort: http}]
    """) % (sys.executable, SERVER)


@dataclass
class Counts:
    ok: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dir = Path(tempfile.mkdtemp(prefix="meshd-soak-"))
        self.state = self.dir / "state"
        self.api = f"127.0.0.1:{free_port()}"
        self.dns = f"127.0.0.1:{free_port()}"
        self.agent: subprocess.Popen | None = None
        self.counts = Counts()
        self.events: list[str] = []
        self.stop = asyncio.Event()

    # --- the agent -----------------------------------------------------------------------------------

    def start_agent(self) -> None:
        log = open(self.dir / "agent.log", "ab")  # noqa: SIM115 - the child holds it
        self.agent = subprocess.Popen(
            [sys.executable, "-m", "meshd.cli", "agent", "--driver", "process", "--api", self.api, "--dns", self.dns,
             "--state-dir", str(self.state), "--mdns", "off", "--backoff-initial", "1"],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        log.close()

    def token(self) -> str | None:
        """The API's bearer token where the agent writes one (STATE/token)."""
        try:
            return (self.state / "token").read_text().strip() or None
        except OSError:
            return None

    def cli(self, *args: str, stdin: str | None = None) -> str:
        token = self.token()
        return subprocess.run([sys.executable, "-m", "meshd.cli", "--api", self.api, *args], input=stdin, check=True,
                              capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, **({"MESHD_TOKEN": token} if token else {})}).stdout

    async def get(self, http: aiohttp.ClientSession, path: str) -> str | None:
        token = self.token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with http.get(f"http://{self.api}{path}", timeout=aiohttp.ClientTimeout(total=3),
                                headers=headers) as reply:
                return await reply.text() if reply.status == 200 else None
        except (aiohttp.ClientError, OSError, TimeoutError):
            return None

    async def wait_ready(self, http: aiohttp.ClientSession, replicas: int = 3) -> str:
        for _ in range(1200):
            body = await self.get(http, "/api/v1/namespaces/default/endpoints/soak")
            if body:
                subsets = json.loads(body).get("subsets") or []
                if sum(len(s.get("addresses") or []) for s in subsets) == replicas:
                    service = json.loads(await self.get(http, "/api/v1/namespaces/default/services/soak") or "{}")
                    return service["spec"]["clusterIP"]
            await asyncio.sleep(0.1)
        raise SystemExit(f"the soak Deployment never got ready; see {self.dir / 'agent.log'}")

    def sidecar_pid(self) -> int | None:
        try:
            return int(json.loads((self.state / "sidecar.json").read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None

    def pod_groups(self) -> list[int]:
        groups = []
        for record in (self.state / "process" / "process-driver" / "records").glob("*.json"):
            try:
                data = json.loads(record.read_text())
            except (OSError, ValueError):
                continue
            if data.get("kind") == "container" and data.get("state") == "running" and data.get("pid"):
                groups.append(int(data["pid"]))
        return groups

    # --- load and chaos ------------------------------------------------------------------------------

    async def load(self, url: str, concurrency: int) -> None:
        connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as http:
            async def client() -> None:
                while not self.stop.is_set():
                    try:
                        async with http.get(url) as reply:
                            await reply.read()
                            if reply.status == 200:
                                self.counts.ok += 1
                                continue
                            error = f"HTTP {reply.status}"
                    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                        error = type(exc).__name__
                    self.counts.failed += 1
                    self.counts.errors[error] = self.counts.errors.get(error, 0) + 1
                    await asyncio.sleep(0.05)

            await asyncio.gather(*(client() for _ in range(concurrency)))

    async def chaos(self) -> None:
        rng = random.Random(self.args.seed)
        started = time.monotonic()
        due = {"kill": self.args.kill_every, "sidecar": self.args.sidecar_every, "agent": self.args.agent_every}
        while not self.stop.is_set():
            await asyncio.sleep(0.5)
            elapsed = time.monotonic() - started
            if due["kill"] and elapsed >= due["kill"]:
                due["kill"] += self.args.kill_every
                groups = self.pod_groups()
                if groups:
                    _signal_group(rng.choice(groups), signal.SIGKILL)
                    self.events.append("replica killed")
            if due["sidecar"] and elapsed >= due["sidecar"]:
                due["sidecar"] += self.args.sidecar_every
                pid = self.sidecar_pid()
                if pid:
                    _signal(pid, signal.SIGKILL)
                    self.events.append("sidecar killed")
            if due["agent"] and elapsed >= due["agent"]:
                due["agent"] += self.args.agent_every
                assert self.agent is not None
                self.agent.kill()
                await asyncio.to_thread(self.agent.wait)
                self.start_agent()
                self.events.append("agent killed and started")

    async def report(self) -> list[tuple[float, int, int, int, int, int, int]]:
        started = time.monotonic()
        samples = []
        print(f"{'t':>6} {'agent RSS':>10} {'agent fds':>9} {'sidecar RSS':>11} {'sidecar fds':>11} "
              f"{'ok':>9} {'failed':>6}  events", flush=True)
        last_ok = last_failed = 0
        while not self.stop.is_set():
            try:
                await asyncio.wait_for(self.stop.wait(), self.args.interval)
            except TimeoutError:
                pass
            agent = self.agent.pid if self.agent else None
            sample = (time.monotonic() - started, *_usage(agent), *_usage(self.sidecar_pid()),
                      self.counts.ok, self.counts.failed)
            samples.append(sample)
            events = ", ".join(f"{n}x {e}" for e, n in _tally(self.events).items())
            self.events.clear()
            print(f"{sample[0]:6.0f} {sample[1] / 2**20:8.1f}MB {sample[2]:9d} {sample[3] / 2**20:9.1f}MB "
                  f"{sample[4]:11d} {self.counts.ok - last_ok:9d} {self.counts.failed - last_failed:6d}  {events}",
                  flush=True)
            last_ok, last_failed = self.counts.ok, self.counts.failed
        return samples

    async def run(self) -> int:
        self.start_agent()
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                if await self.get(http, "/healthz") is not None:
                    break
                await asyncio.sleep(0.1)
            await asyncio.to_thread(self.cli, "apply", "-f", "-", stdin=MANIFEST)
            address = await self.wait_ready(http)
        print(f"soak: {self.args.duration:.0f}s, load x{self.args.concurrency} on http://{address}/, state {self.dir}",
              flush=True)
        tasks = [asyncio.create_task(self.load(f"http://{address}/", self.args.concurrency)),
                 asyncio.create_task(self.chaos()), asyncio.create_task(self.report())]
        await asyncio.sleep(self.args.duration)
        self.stop.set()
        _, _, samples = await asyncio.gather(*tasks)
        self.summary(samples)
        await asyncio.to_thread(self.teardown)
        return 0 if self.counts.failed == 0 else 1

    def summary(self, samples: list) -> None:
        total = self.counts.ok + self.counts.failed
        print(f"\nrequests: {total:,}, failed: {self.counts.failed:,} "
              f"({100 * self.counts.failed / max(total, 1):.3f} %) {self.counts.errors or ''}")
        steady = samples[len(samples) // 4:] or samples  # after warm-up
        if len(steady) >= 2:
            for name, index in (("agent RSS", 1), ("agent fds", 2), ("sidecar RSS", 3), ("sidecar fds", 4)):
                first, last, peak = steady[0][index], steady[-1][index], max(s[index] for s in steady)
                unit, scale = ("MB", 2**20) if "RSS" in name else ("", 1)
                print(f"{name}: {first / scale:.1f}{unit} -> {last / scale:.1f}{unit} (peak {peak / scale:.1f}{unit})"
                      + (f", {last / first:.2f}x" if first else ""))

    def teardown(self) -> None:
        """Stops what the soak started, by pid: the agent, the pods it leaves, the sidecar."""
        if self.agent is not None and self.agent.poll() is None:
            self.agent.send_signal(signal.SIGTERM)
            try:
                self.agent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.agent.kill()
        for group in self.pod_groups():
            _signal_group(group, signal.SIGKILL)
        pid = self.sidecar_pid()
        if pid:
            _signal(pid, signal.SIGTERM)


def _usage(pid: int | None) -> tuple[int, int]:
    if not pid:
        return 0, 0
    try:
        rss = int(re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1)) * 1024  # type: ignore[union-attr]
        return rss, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, AttributeError):
        return 0, 0


def _tally(events: list[str]) -> dict[str, int]:
    tally: dict[str, int] = {}
    for event in events:
        tally[event] = tally.get(event, 0) + 1
    return tally


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds (default 3600)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between report lines")
    parser.add_argument("--concurrency", type=int, default=4, help="clients keeping requests in flight")
    parser.add_argument("--kill-every", type=float, default=10.0, help="SIGKILL a replica every N s (0: never)")
    parser.add_argument("--sidecar-every", type=float, default=120.0, help="SIGKILL the sidecar every N s (0: never)")
    parser.add_argument("--agent-every", type=float, default=90.0, help="SIGKILL and restart the agent every N s (0: never)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    try:
        import uvloop

        return uvloop.run(Soak(args).run())
    except ImportError:
        return asyncio.run(Soak(args).run())


if __name__ == "__main__":
    raise SystemExit(main())
