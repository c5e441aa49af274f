"""The hosts-file mode: our marked block in /etc/hosts follows the registry's Services as they come and go.

Decide (`host_entries`, `replace_block`), then act (`write_hosts_file`, in a thread: nothing blocks the loop),
in one serial worker woken by the registry's pushed updates; a burst of updates is one write, and writes are at
least `interval` apart. `close()` takes the block out; a crashed agent's block is replaced by the next start.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from meshd.hostnames.block import markers, replace_block
from meshd.hostnames.entries import host_entries, hosts_lines
from meshd.model.endpoints import Endpoint, ServiceInfo, ServiceKey, Update
from meshd.tasks import done_within

log = logging.getLogger(__name__)

DEFAULT_HOSTS_FILE = "/etc/hosts"


class Followable(Protocol):
    """What the hosts file needs of the registry: Services, their endpoints, and a callback on every update."""

    def services(self) -> list[ServiceInfo]: ...

    def endpoints(self, key: ServiceKey) -> tuple[Endpoint, ...]: ...

    def listen(self, listener: Callable[[Update], None]) -> Callable[[], None]: ...


def hosts_file_path() -> Path:
    """/etc/hosts, or $MESHD_HOSTS_FILE (tests, or a system that keeps it elsewhere)."""
    return Path(os.environ.get("MESHD_HOSTS_FILE") or DEFAULT_HOSTS_FILE)


def read_hosts_file(path: Path) -> str:
    """The file's text; bytes that are not UTF-8 survive a read-write round trip (surrogateescape)."""
    return path.read_bytes().decode("utf-8", "surrogateescape")


def write_hosts_file(path: Path, text: str) -> str:
    """Replaces the file's content atomically: a temp file in the same directory (the file's mode and owner),
    fsync, rename. Where rename cannot replace the file (EBUSY: Docker bind-mounts /etc/hosts into containers;
    or the directory is not writable) it is rewritten in place (write, truncate, fsync) instead.
    Returns how: "renamed" or "in place"."""
    path = Path(os.path.realpath(path))  # a symlinked /etc/hosts stays a symlink
    data = text.encode("utf-8", "surrogateescape")
    info = os.stat(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.meshd-")
    except OSError as error:
        if error.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        _rewrite_in_place(path, data)
        return "in place"
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), stat.S_IMODE(info.st_mode))
            if (info.st_uid, info.st_gid) != (os.geteuid(), os.getegid()):
                os.fchown(handle.fileno(), info.st_uid, info.st_gid)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.replace(tmp, path)
        except OSError as error:
            if error.errno not in (errno.EBUSY, errno.EXDEV, errno.EPERM):
                raise
            os.unlink(tmp)
            _rewrite_in_place(path, data)
            return "in place"
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)
    return "renamed"


def _rewrite_in_place(path: Path, data: bytes) -> None:
    """Writes first and truncates after, so a reader never sees an empty file (it may see a mixed one briefly)."""
    with open(path, "r+b") as handle:
        handle.write(data)
        handle.truncate()
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def update_hosts_file(path: Path, tag: str, lines: Iterable[str]) -> str:
    """Puts `lines` in our block of the file (none: takes the block out); how it was written, "" if unchanged."""
    text = read_hosts_file(path)
    new = replace_block(text, tag, tuple(lines))
    return write_hosts_file(path, new) if new != text else ""


class HostsFileNames:
    """Keeps our block in the hosts file equal to the registry's names from `start()` until `close()`."""

    def __init__(
        self,
        registry: Followable,
        *,
        tag: str,
        zone: str = "cluster.local",
        path: Path | None = None,
        interval: float = 0.15,
        retry_delay: float = 5.0,
    ) -> None:
        markers(tag)  # a bad tag fails here, not in the worker
        self.registry = registry
        self.tag = tag
        self.zone = zone
        self.path = path if path is not None else hosts_file_path()
        self.interval = interval
        self.retry_delay = retry_delay
        self.written: tuple[str, ...] | None = None  # what the file holds, as far as we know (None: unknown)
        self._problem: str | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stop_listening: Callable[[], None] | None = None
        self._retry: asyncio.TimerHandle | None = None

    def desired(self) -> tuple[str, ...]:
        services = self.registry.services()
        endpoints = {s.key: self.registry.endpoints(s.key) for s in services}
        return hosts_lines(host_entries(services, endpoints, zone=self.zone))

    async def start(self) -> None:
        """Writes the names now (replacing a crashed agent's block), then follows every registry update."""
        if self._task is not None:
            return
        await self._sync(self.desired())
        self._stop_listening = self.registry.listen(self._on_update)
        self._start_worker()

    async def close(self) -> None:
        """Stops following the registry and takes our block out of the file."""
        if self._stop_listening:
            self._stop_listening()
            self._stop_listening = None
        if self._retry:
            self._retry.cancel()
        self._stopping.set()
        self._wake.set()
        if self._task:
            task, self._task = self._task, None
            await asyncio.gather(task, return_exceptions=True)  # lets a write in progress finish first
        if self.written != ():
            await self._sync(())

    def _on_update(self, _update: Update) -> None:
        self._wake.set()  # coalesced: the worker reads the whole registry once per wake-up

    def _start_worker(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hosts-file")
        self._task.add_done_callback(self._on_worker_done)

    def _on_worker_done(self, task: asyncio.Task[None]) -> None:
        if task is not self._task or task.cancelled() or self._stopping.is_set():
            return
        log.error("hosts file: the worker died; restarting it", exc_info=task.exception())
        self._start_worker()
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self._wake.wait()
            if self._stopping.is_set():
                return
            self._wake.clear()
            desired = self.desired()
            if desired != self.written:
                await self._sync(desired)
            # at most one write per interval: updates meanwhile wait for the next round
            await done_within(self._stopping.wait(), self.interval)

    async def _sync(self, lines: tuple[str, ...]) -> None:
        try:
            how = await asyncio.to_thread(update_hosts_file, self.path, self.tag, lines)
        except OSError as error:
            self.written = None
            self._report(error)
            if not isinstance(error, PermissionError) and not self._stopping.is_set():
                self._retry = asyncio.get_running_loop().call_later(self.retry_delay, self._wake.set)
            return
        self.written = lines
        if how:
            log.debug("hosts file: %d lines in %s (%s)", len(lines), self.path, how)
            if self._problem is not None:
                log.info("hosts file: %s is written again", self.path)
        self._problem = None

    def _report(self, error: OSError) -> None:
        """Says once what could not be done (and again only when the reason changes)."""
        problem = f"{type(error).__name__}: {error.strerror or error}"
        if problem == self._problem:
            return
        self._problem = problem
        hint = (
            " (run the agent as root, or --host-names off to do without)"
            if isinstance(error, PermissionError)
            else "; retrying"
        )
        log.warning(
            "apps on this host cannot resolve the mesh's names: cannot write %s: %s%s",
            self.path,
            error.strerror or error,
            hint,
        )
