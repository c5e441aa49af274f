"""Helpers shared by the sidecar's integration tests and benchmarks: ports, processes, a sidecar process."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0, alive: Process | None = None) -> None:
    """Until something listens on host:port; TimeoutError after `timeout` or once `alive` has exited."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            _, w = await asyncio.open_connection(host, port)
            w.close()
            return
        except OSError:
            if loop.time() > deadline or (alive is not None and alive.proc.returncode is not None):
                raise TimeoutError(f"nothing listens on {host}:{port}") from None
            await asyncio.sleep(0.05)


async def run(*cmd: str, timeout: float = 60.0, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
    """Run a command without blocking the loop; (returncode, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    assert proc.returncode is not None
    return proc.returncode, out, err


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")


class Process:
    """A child process (sidecar or backend) with its output kept for failure messages."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def stop(self, sig: int = 15, timeout: float = 20.0) -> int:
        if self.proc.returncode is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode  # type: ignore[return-value]


async def spawn(args: list[str], log: Path, extra_env: dict[str, str] | None = None) -> Process:
    with open(log, "wb") as f:  # noqa: ASYNC230 - a local log file, once
        proc = await asyncio.create_subprocess_exec(*args, stdout=f, stderr=f, env={**env(), **(extra_env or {})},
                                                    cwd=str(ROOT))
    return Process(proc, log)


async def start_sidecar(
    api: str, log: Path, *args: str, listen_port: int | None = None
) -> tuple[Process, int]:
    """`python -m sidecar --api API ARGS`; returns it and its metrics port once that answers."""
    mport = free_port()
    proc = await spawn(
        [sys.executable, "-m", "sidecar", "--api", api, "--metrics", f"127.0.0.1:{mport}", *args], log,
        {"MESHD_SIDECAR_OF": str(log.parent.resolve())},  # whose it is: a test's leftover is found by it
    )
    try:  # (generous: a loaded machine takes seconds to import a sidecar; a dead one ends the wait at once)
        await wait_port(mport, timeout=60, alive=proc)
        if listen_port is not None:
            await wait_port(listen_port, timeout=60, alive=proc)
    except TimeoutError:
        await proc.stop()
        raise AssertionError(f"sidecar did not start:\n{proc.output()}") from None
    return proc, mport


async def start_backend(name: str, log: Path, *args: str) -> tuple[Process, int]:
    port = free_port()
    script = str(Path(__file__).parent / "backend.py")
    proc = await spawn([sys.executable, script, "--port", str(port), "--name", name, *args], log)
    await wait_port(port)
    return proc, port
