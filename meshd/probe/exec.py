"""Exec probe: runs a command in the container; exit code 0 is success (kubelet's `pkg/probe/exec`).

`probe_exec(run=, command=, timeout=)` never raises. `run(command, timeout)` is the driver's exec
(`Driver.exec` bound to a container id, see `exec_runner`), or `run_subprocess` for a local process. A
non-zero exit or a timeout is a `failure` (the message carries the truncated output); an exception from
`run` other than a timeout (engine unreachable, container gone) is an `error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from meshd.driver.base import Driver, ExecResult
from meshd.probe.result import ProbeResult, truncate

ExecRun = Callable[[tuple[str, ...], float], Awaitable[ExecResult]]


def exec_runner(driver: Driver, container_id: str) -> ExecRun:
    """`run` for probe_exec: the driver's exec in one container."""

    async def run(command: tuple[str, ...], timeout: float) -> ExecResult:
        return await driver.exec(container_id, command, timeout=timeout)

    return run


async def run_subprocess(command: tuple[str, ...], timeout: float) -> ExecResult:
    """`run` for probe_exec on this host: stdout+stderr combined; the process is killed at the timeout."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except (FileNotFoundError, PermissionError) as exc:  # what a shell (and docker exec) reports as 127 / 126
        return ExecResult(
            exit_code=127 if isinstance(exc, FileNotFoundError) else 126, output=str(exc).encode()
        )
    try:
        async with asyncio.timeout(timeout):
            output, _ = await proc.communicate()
    except BaseException:  # timeout or cancellation: never leave the child behind
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    return ExecResult(exit_code=proc.returncode if proc.returncode is not None else -1, output=output)


def _text(output: bytes) -> str:
    return truncate(output.decode("utf-8", "replace").strip())


async def probe_exec(*, run: ExecRun, command: tuple[str, ...], timeout: float) -> ProbeResult:
    """Runs `command` via `run` within `timeout` seconds and judges its exit code."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            result = await run(tuple(command), timeout)
    except TimeoutError:
        return ProbeResult(
            "failure",
            f"command {list(command)!r} timed out after {timeout:g}s",
            time.perf_counter() - started,
        )
    except Exception as exc:  # noqa: BLE001 - the prober broke, not the container
        return ProbeResult(
            "error", f"exec {list(command)!r}: {type(exc).__name__}: {exc}", time.perf_counter() - started
        )
    elapsed = time.perf_counter() - started
    if result.exit_code == 0:
        return ProbeResult("success", _text(result.output), elapsed)
    return ProbeResult(
        "failure",
        f"command {list(command)!r} exited with {result.exit_code}: {_text(result.output)}",
        elapsed,
    )
