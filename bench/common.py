"""What the agent benchmarks share: waiting for a condition, percentiles, free ports."""

from __future__ import annotations

import asyncio
import socket
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
