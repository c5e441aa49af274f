"""What the agent benchmarks share: waiting for a condition, percentiles, free ports."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(round(q * (len(ordered) - 1)), len(ordered) - 1)]


async def wait_for(check: Callable[[], Any], timeout: float = 120.0, interval: float = 0.001) -> None:
    """Polls `check` until it is truthy; a benchmark that never gets there fails loudly."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        await asyncio.sleep(interval)


def api_headers(state_dir: Path, content_type: str = "application/yaml") -> dict[str, str]:
    """What a client of a real agent sends: its bearer token (STATE/token; none for a tree without one, e.g.
    a --baseline checkout from before the API had authentication) and a content type its writes need."""
    try:
        token = (state_dir / "token").read_text().strip()
    except OSError:
        return {"Content-Type": content_type}
    return {"Authorization": f"Bearer {token}", "Content-Type": content_type}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_process_agent(tree: Path, work: Path) -> tuple[asyncio.subprocess.Process, str, int, Path]:
    """`meshd agent --driver process` from the source tree `tree` (no sidecar, no mDNS), its log in `work`:
    (the process, its API host:port, its DNS port, its state dir). Returns once /healthz answers."""
    import aiohttp

    state = work / "state"
    api, dns_port = f"127.0.0.1:{free_port()}", free_port()
    with (work / "agent.log").open("wb") as log:
        agent = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "meshd.cli", "agent", "--driver", "process", "--mdns", "off", "--no-sidecar",
            "--api", api, "--dns", f"127.0.0.1:{dns_port}", "--state-dir", str(state),
            env={**os.environ, "PYTHONPATH": str(tree)}, cwd=work, stdout=log, stderr=log)
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            try:
                async with http.get(f"http://{api}/healthz") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    return agent, api, dns_port, state
