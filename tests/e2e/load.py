"""Steady load from `hey` that lasts exactly as long as what a test puts under it: started before the change
(a rollout, a scale-down), stopped once the change is over. On SIGINT hey lets each worker finish its request
and prints its report as at the end of its -z duration, so a test waits for its change, never for a fixed time."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess

LONGEST = "300s"  # hey's own end: only a test that never stops its load waits for it (then its timeout fails it)


def hey_command(url: str, *options: str) -> list[str]:
    """hey against `url` with 4 workers until stopped; `options` as hey takes them (-host, -disable-keepalive)."""
    return ["hey", "-z", LONGEST, "-c", "4", *options, url]


def status_codes(output: str) -> dict[str, int]:
    """hey's status-code distribution: {"200": 1234}."""
    return {code: int(count) for code, count in re.findall(r"\[(\d+)\]\s+(\d+) responses", output)}


def start(url: str, *options: str) -> subprocess.Popen:
    return subprocess.Popen(hey_command(url, *options), stdout=subprocess.PIPE, text=True)


def stop(load: subprocess.Popen) -> tuple[dict[str, int], str]:
    """Ends the load; its status codes, and hey's whole report for a failure message."""
    load.send_signal(signal.SIGINT)
    output = load.communicate(timeout=60)[0]
    return status_codes(output), output


async def start_async(url: str, *options: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*hey_command(url, *options), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)


async def stop_async(load: asyncio.subprocess.Process) -> tuple[dict[str, int], str]:
    load.send_signal(signal.SIGINT)
    output = (await asyncio.wait_for(load.communicate(), 60))[0].decode()
    return status_codes(output), output
