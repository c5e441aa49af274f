"""The node's sidecar as a separate process that outlives the agent: recorded in the state dir, adopted by
the next agent (never a second one fighting for the same ports), restarted if it dies, stopped on shutdown."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from meshd.fdhandover import FdKeeper
from meshd.model.handover import FDS_VARIABLE, PATH_VARIABLE, encode_inherited, handover_path
from meshd.hostslots import port_free
from meshd.logfiles import rotate_log
from meshd.state import write_atomically
from meshd.tasks import done_within, restart_delay, run_supervised

log = logging.getLogger(__name__)

RECORD = "sidecar.json"
TAG_VARIABLE = "MESHD_SIDECAR_OF"  # names the state dir whose agent owns the process
TOKEN_VARIABLE = "MESHD_TOKEN"


def _alive(pid: int, marker: str) -> bool:
    """Whether `pid` is this state dir's sidecar, running (not a zombie). A check that cannot be made (EMFILE,
    ENOMEM) says alive: only a process known gone is replaced, never one the agent could not look at."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ESRCH):
            return False
        log.warning("cannot check the sidecar (pid %d): %s; assuming it runs", pid, error)
        return True
    return f"{TAG_VARIABLE}={marker}".encode() in environ and ") Z " not in stat


def running_sidecar(state_dir: Path) -> int | None:
    """The pid of `state_dir`'s sidecar if it still runs (blocking: reads files)."""
    try:
        pid = int(json.loads((state_dir / RECORD).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if pid and _alive(pid, str(state_dir.resolve())) else None


def left_running(holder: Mapping[str, Any]) -> int | None:
    """The sidecar a host slot's last holder (meshd.hostslots.read_holder) left running, if any (blocking)."""
    state_dir = holder.get("state_dir")
    return running_sidecar(Path(state_dir)) if isinstance(state_dir, str) and state_dir else None


async def terminate(pid: int, marker: str, *, reap: Callable[[], object] = lambda: None) -> None:
    """Stops the sidecar `pid` of the state dir `marker`: SIGTERM, SIGKILL if it still runs 5 s later. `reap`
    collects it when it is this process's child."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        reap()
        if not await asyncio.to_thread(_alive, pid, marker):
            return
        await asyncio.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class SidecarProcess:
    def __init__(self, *, state_dir: Path, api_url: str, metrics: str, metrics_fixed: bool = True, token: str = "",
                 check_interval: float = 1.0) -> None:
        self.state_dir = state_dir
        self.token = token
        self.api_url = api_url
        self.metrics = metrics
        self._metrics_fixed = metrics_fixed  # the user chose it: a held port is an error, not moved
        self.pid: int | None = None
        self._marker = str(state_dir.resolve())
        self._interval = check_interval
        self.extra_args: list[str] = []  # e.g. the Ingress's listening addresses
        self._task: asyncio.Task | None = None
        self._child: subprocess.Popen | None = None
        self.starts = 0  # sidecars this agent started (a restart counts)
        path = handover_path(state_dir)
        if path is None:
            log.warning("the state dir's path is too long for the sidecar's fd handover socket: connections "
                        "to Services are refused while the sidecar restarts")
        self.keeper = FdKeeper(path) if path is not None else None  # the sidecar's listening sockets
        self._keeper_task: asyncio.Task | None = None

    def targets(self) -> list[str]:
        return [self.metrics] if self.pid else []

    def _command(self) -> list[str]:
        return [sys.executable, "-c", "import sys; from sidecar.main import main; sys.exit(main())",
                "--api", self.api_url, "--metrics", self.metrics, "--id", f"node-{os.getpid()}", *self.extra_args]

    async def start(self) -> None:
        pid = await asyncio.to_thread(running_sidecar, self.state_dir)
        if pid is not None:
            self.pid = pid
            log.info("adopted the running sidecar (pid %d)", pid)
        if self.pid is None:
            await self._spawn()
        if self.keeper is not None:
            self._keeper_task = asyncio.create_task(run_supervised("sidecar fd handover", self.keeper.run),
                                                    name="sidecar fd handover")
        self._task = asyncio.create_task(run_supervised("sidecar supervisor", self._supervise),
                                         name="sidecar supervisor")

    async def _spawn(self) -> None:
        log_path = self.state_dir / "sidecar.log"

        fds = self.keeper.dups() if self.keeper is not None else {}  # the last sidecar's sockets (our own dups:
        # the keeper may close its fds while the spawn runs in its thread)

        def spawn() -> subprocess.Popen:
            rotate_log(log_path)
            self._check_metrics_port()
            env = self._environment()
            if fds:
                env[FDS_VARIABLE] = encode_inherited(fds)
            with open(log_path, "ab") as out:
                return subprocess.Popen(self._command(), stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True,
                                        env=env, pass_fds=sorted(fds.values()))

        try:
            self._child = await asyncio.to_thread(spawn)
        finally:
            for fd in fds.values():
                os.close(fd)
        self.pid = self._child.pid
        self.starts += 1
        await asyncio.to_thread(write_atomically, self.state_dir / RECORD, json.dumps({"pid": self.pid}).encode())
        log.info("started the sidecar (pid %d, log %s)", self.pid, log_path)

    def _environment(self) -> dict[str, str]:
        """The agent's environment, plus the tag and the API token (in env, never in argv where `ps` shows it)."""
        env = {**os.environ, TAG_VARIABLE: self._marker}
        for name in (TOKEN_VARIABLE, FDS_VARIABLE, PATH_VARIABLE):
            env.pop(name, None)
        if self.keeper is not None:
            env[PATH_VARIABLE] = self.keeper.path
        if self.token:
            env[TOKEN_VARIABLE] = self.token
        return env

    async def _exit_or_interval(self) -> None:
        """Returns when the sidecar exits (a pidfd, so a death is seen at once) or after the check interval."""
        try:
            fd = os.pidfd_open(self.pid) if self.pid else -1
        except OSError:  # gone already, EMFILE, or an old kernel: the interval alone
            fd = -1
        if fd < 0:
            await asyncio.sleep(self._interval)
            return
        loop = asyncio.get_running_loop()
        exited = loop.create_future()

        def readable() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await done_within(exited, self._interval)
        finally:
            loop.remove_reader(fd)
            os.close(fd)

    def _check_metrics_port(self) -> None:
        """A metrics port another process holds (another agent's sidecar?) is reported, never shared: a
        derived port moves to a free one, a chosen one is logged as the error it is."""
        host, _, port = self.metrics.rpartition(":")
        if port_free(host, int(port)):
            return
        if self._metrics_fixed:
            log.error("the sidecar's metrics address %s is held by another process: its /metrics will be "
                      "missing (choose another with --sidecar-metrics)", self.metrics)
            return
        with socket.socket() as probe:
            probe.bind((host, 0))
            moved = f"{host}:{probe.getsockname()[1]}"
        log.warning("the sidecar's metrics port %s is held by another process; using %s", self.metrics, moved)
        self.metrics = moved

    async def _supervise(self) -> None:
        """Every interval: reaps the sidecar if it exited, whatever killed it, and starts it again with a
        growing delay; a failed start (EMFILE, ENOMEM...) is logged and retried, never the end of this loop."""
        failures = 0  # deaths in a row (a sidecar that lives a minute resets it)
        alive_since = time.monotonic()
        while True:
            await self._exit_or_interval()
            if self._child is not None and self._child.poll() is not None:  # reaped
                self._child = None
            if self.pid and await asyncio.to_thread(_alive, self.pid, self._marker):
                if time.monotonic() - alive_since > 60:
                    failures = 0
                await asyncio.to_thread(rotate_log, self.state_dir / "sidecar.log")  # it appends: copytruncate
                continue
            if self.pid:
                log.warning("the sidecar (pid %d) exited", self.pid)
                self.pid = None
            delay = restart_delay(failures)
            failures += 1
            if delay:
                log.warning("starting the sidecar again in %.0fs", delay)
                await asyncio.sleep(delay)
            try:
                await self._spawn()
                alive_since = time.monotonic()
            except OSError as error:
                log.error("cannot start the sidecar: %s (retrying)", error)

    async def _stop_keeper(self) -> None:
        if self._keeper_task is not None:
            self._keeper_task.cancel()
            await asyncio.gather(self._keeper_task, return_exceptions=True)
            self._keeper_task = None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._stop_keeper()
        if self.keeper is not None:
            self.keeper.close()  # the sidecar stops for good: its sockets close with it
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        child = self._child
        await terminate(pid, self._marker, reap=child.poll if child is not None else lambda: None)
        await asyncio.to_thread((self.state_dir / RECORD).unlink, missing_ok=True)

    def detach(self) -> None:
        """Leaves the sidecar running (the agent stops without a normal shutdown)."""
        if self._task is not None:
            self._task.cancel()
        if self._keeper_task is not None:
            self._keeper_task.cancel()
