"""The node's sidecar as a separate process that outlives the agent: recorded in the state dir, adopted by
the next agent (never a second one fighting for the same ports), restarted if it dies, stopped on shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from meshd.state import write_atomically

log = logging.getLogger(__name__)

RECORD = "sidecar.json"
TAG_VARIABLE = "MESHD_SIDECAR_OF"  # names the state dir whose agent owns the process
TOKEN_VARIABLE = "MESHD_TOKEN"


def _alive(pid: int, marker: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return f"{TAG_VARIABLE}={marker}".encode() in environ and ") Z " not in stat


class SidecarProcess:
    def __init__(self, *, state_dir: Path, api_url: str, metrics: str, token: str = "",
                 check_interval: float = 1.0) -> None:
        self.state_dir = state_dir
        self.token = token
        self.api_url = api_url
        self.metrics = metrics
        self.pid: int | None = None
        self._marker = str(state_dir.resolve())
        self._interval = check_interval
        self._task: asyncio.Task | None = None
        self._child: subprocess.Popen | None = None

    def targets(self) -> list[str]:
        return [self.metrics] if self.pid else []

    def _command(self) -> list[str]:
        return [sys.executable, "-c", "import sys; from sidecar.main import main; sys.exit(main())",
                "--api", self.api_url, "--metrics", self.metrics, "--id", f"node-{os.getpid()}"]

    async def start(self) -> None:
        record = self.state_dir / RECORD
        if record.exists():
            try:
                pid = int(json.loads(record.read_text())["pid"])
            except (ValueError, KeyError, json.JSONDecodeError):
                pid = 0
            if pid and _alive(pid, self._marker):
                self.pid = pid
                log.info("adopted the running sidecar (pid %d)", pid)
        if self.pid is None:
            self._spawn()
        self._task = asyncio.create_task(self._supervise())

    def _spawn(self) -> None:
        log_path = self.state_dir / "sidecar.log"
        with open(log_path, "ab") as out:
            self._child = subprocess.Popen(self._command(), stdout=out, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True,
                                           env=self._environment())
        self.pid = self._child.pid
        write_atomically(self.state_dir / RECORD, json.dumps({"pid": self.pid}).encode())
        log.info("started the sidecar (pid %d, log %s)", self.pid, log_path)

    def _environment(self) -> dict[str, str]:
        """The agent's environment, plus the tag and the API token (in env, never in argv where `ps` shows it)."""
        env = {**os.environ, TAG_VARIABLE: self._marker}
        env.pop(TOKEN_VARIABLE, None)
        if self.token:
            env[TOKEN_VARIABLE] = self.token
        return env

    async def _supervise(self) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(self._interval)
            if self._child is not None:
                self._child.poll()  # reap it if it exited
            if self.pid and not _alive(self.pid, self._marker):
                log.warning("the sidecar (pid %d) exited; starting it again in %.0fs", self.pid, delay)
                self.pid = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
                self._spawn()
            else:
                delay = 1.0

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        for _ in range(100):
            if self._child is not None:
                self._child.poll()
            if not _alive(pid, self._marker):
                break
            await asyncio.sleep(0.05)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        (self.state_dir / RECORD).unlink(missing_ok=True)

    def detach(self) -> None:
        """Leaves the sidecar running (the agent stops without a normal shutdown)."""
        if self._task is not None:
            self._task.cancel()
