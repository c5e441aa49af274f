"""The process driver: each container's command runs as a local process group (Nomad's raw_exec), no isolation.

A sandbox is a loopback address (127.213.0.N, env POD_IP) that the pod's processes bind; a container is a
process group whose output goes to a log file. Records (pid, process start time, labels) are JSON files in the
state dir, so a restarted agent adopts live processes; a process whose pid now belongs to another program (start
time differs) counts as exited. Limits and isolation it cannot enforce are announced once, never pretended.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ipaddress
import json
import logging
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from meshd.driver import ContainerNotFound, ExecTimeout
from meshd.driver.base import (
    ContainerConfigError,
    INFRA_CONTAINER,
    LABEL_AGENT,
    LABEL_CONTAINER,
    LABEL_MANAGED,
    LABEL_RESTART_COUNT,
    ContainerEvent,
    ContainerSpec,
    ContainerState,
    DriverError,
    ExecResult,
    ObservedContainer,
    Sandbox,
    SandboxSpec,
    Usage,
    needs_source,
)
from meshd.driver.linkaddresses import LoopbackServiceAddresses
from meshd.driver.listening import listening_addresses
from meshd.driver.process_security import no_new_privs, own_volume, popen_credentials, process_refusal
from meshd.driver.session import ExecSession, ProcessExecSession
from meshd.logfiles import MAX_SIZE, remove_logs, rotate_log
from meshd.model.expansion import expand_container
from meshd.model.objects import Container
from meshd.tasks import TaskGroup, done_within

log = logging.getLogger(__name__)
ID_VARIABLE = "MESHD_CONTAINER_ID"  # in every process's environment: finds it when its record is damaged

LABEL_SANDBOX = "io.meshd.sandbox"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Record:
    """What the state dir keeps about one sandbox or container."""

    id: str
    labels: Mapping[str, str]
    kind: str  # "sandbox" | "container"
    address: str | None = None
    sandbox: str | None = None
    pid: int | None = None
    proc_start: int | None = None  # /proc/<pid>/stat starttime, in clock ticks since boot
    state: ContainerState = "running"
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    image: str = ""
    cwd: str = ""
    env: Mapping[str, str] = field(default_factory=dict)

    def observed(self) -> ObservedContainer:
        return ObservedContainer(
            id=self.id,
            labels=self.labels,
            state=self.state,
            image=self.image,
            exit_code=self.exit_code,
            started_at=self.started_at,
            finished_at=self.finished_at,
            address=self.address if self.kind == "sandbox" else None,
        )


def read_procfs(path: str) -> str | None:
    """A small /proc file's text. procfs is served from memory, never the disk: safe to read on the loop."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        return os.read(fd, 4096).decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (None when the pid does not exist); with the pid, a process's identity."""
    stat = read_procfs(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def proc_alive(pid: int, start: int | None) -> bool:
    """True when `pid` still runs the process started at `start` (not a zombie, not a recycled pid)."""
    stat = read_procfs(f"/proc/{pid}/stat")
    if stat is None:
        return False
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return False
    return start is None or int(fields[19]) == start


def exit_status(returncode: int) -> int:
    """asyncio's -SIG for a signal death -> the shell's (and Docker's) 128+SIG."""
    return 128 - returncode if returncode < 0 else returncode


DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def pod_base_env() -> dict[str, str]:
    """What a pod's process gets from the host: PATH and HOME only, never the agent's environment (which may
    hold its token or other secrets); the pod's own env comes on top."""
    return {"PATH": os.environ.get("PATH") or DEFAULT_PATH, "HOME": os.environ.get("HOME") or "/"}


def port_env(container: Container) -> dict[str, str]:
    """PORT (the first containerPort) and PORT_<NAME> for each named port."""
    env: dict[str, str] = {}
    if container.ports:
        env["PORT"] = str(container.ports[0].container_port)
    for port in container.ports:
        if port.name:
            env["PORT_" + port.name.upper().replace("-", "_")] = str(port.container_port)
    return env


def pick_address(used: set[str], network: ipaddress.IPv4Network) -> str:
    """The lowest free host address of `network` (skipping .0 and .1)."""
    for host in network.hosts():
        if int(host) - int(network.network_address) < 2:
            continue
        if str(host) not in used:
            return str(host)
    raise DriverError(f"no free pod address left in {network}")


class ProcessDriver:
    """Containers as local process groups; sandboxes as loopback addresses."""

    name = "process"

    def __init__(
        self, *, agent_id: str, state_dir: str | os.PathLike[str], pod_network: str = "127.213.0.0/16",
        log_max_size: int = MAX_SIZE, log_check_interval: float = 5.0,
    ):
        self.agent_id = agent_id
        self.dir = Path(state_dir) / "process-driver"
        self.records_dir = self.dir / "records"
        self.logs_dir = self.dir / "logs"
        self.volumes_dir = self.dir / "volumes"
        self.pod_network = ipaddress.ip_network(pod_network)
        self._records: dict[str, Record] = {}
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._exited: dict[str, asyncio.Event] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._subscribers: set[asyncio.Queue[ContainerEvent]] = set()
        self._warned: set[str] = set()
        self._service_addresses = LoopbackServiceAddresses()
        self._lock = asyncio.Lock()
        self._started = False
        self._tasks = TaskGroup("process driver")
        self.log_max_size = log_max_size  # each container's log is rotated past this (5 files kept)
        self.log_check_interval = log_check_interval
        self._cwd = ""  # the agent's working directory: relative commands run from there
        # One thread writes the records, so writes stay ordered and the loop never waits on the disk.
        self._writer = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="meshd-process-records"
        )

    # --- Service addresses (a cluster's range outside 127/8 goes on lo) ----------------------------

    async def add_service_address(self, ip: str) -> None:
        await self._service_addresses.add(ip)

    async def remove_service_address(self, ip: str) -> None:
        await self._service_addresses.remove(ip)

    async def service_addresses(self) -> list[str]:
        return await self._service_addresses.list()

    # --- records ----------------------------------------------------------------------------------

    def _save(self, record: Record) -> None:
        """Updates the record now and writes it (atomically) on the writer thread, in order."""
        self._records[record.id] = record
        data = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in record.__dict__.items()}
        self._writer.submit(_write_atomically, self.records_dir / f"{record.id}.json", json.dumps(data))

    async def _flush(self) -> None:
        """Waits until every record write queued so far is on disk (a new process must be found after kill -9)."""
        await asyncio.wrap_future(self._writer.submit(lambda: None))

    def _forget(self, record_id: str) -> None:
        self._records.pop(record_id, None)
        self._writer.submit(_unlink, self.records_dir / f"{record_id}.json")
        self._writer.submit(remove_logs, self.logs_dir / f"{record_id}.log")

    def _prepare(self) -> str:
        for d in (self.records_dir, self.logs_dir, self.volumes_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._load()
        return os.getcwd()

    def _load(self) -> None:
        for path in sorted(self.records_dir.glob("*.json")):
            try:
                record = Record(**json.loads(path.read_text()))
            except (ValueError, TypeError) as exc:
                _stop_orphans(path, exc)
                continue
            if record.labels.get(LABEL_AGENT) == self.agent_id:
                self._records[record.id] = record

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Loads the records of an earlier run and adopts the processes still alive."""
        if self._started:
            return
        self._started = True
        self._cwd = await asyncio.to_thread(self._prepare)
        for record in list(self._records.values()):
            if record.kind != "container" or record.state != "running":
                continue
            if record.pid is not None and proc_alive(record.pid, record.proc_start):
                self._exited[record.id] = asyncio.Event()
                self._watchers[record.id] = asyncio.create_task(self._watch_adopted(record.id, record.pid))
            else:  # died while no agent watched: its exit status is lost
                self._save(replace(record, state="exited", finished_at=time.time()))
        self._tasks.supervise("log rotation", self._rotate_logs_forever)

    async def _rotate_logs_forever(self) -> None:
        """Caps every running container's log (the kubelet's 10 MiB x 5 files), checked every few seconds."""
        while True:
            await asyncio.sleep(self.log_check_interval)
            paths = [self.logs_dir / f"{r.id}.log" for r in self._records.values()
                     if r.kind == "container" and r.state == "running"]
            for path in paths:
                await asyncio.to_thread(rotate_log, path, max_size=self.log_max_size)

    async def close(self) -> None:
        """Stops watching; the processes keep running (a restarted agent adopts them)."""
        await self._tasks.close()
        tasks = list(self._watchers.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._watchers.clear()
        await asyncio.to_thread(self._writer.shutdown, wait=True)  # flushed: a new instance reads them all

    def _ensure_started(self) -> None:
        if not self._started:
            raise DriverError("ProcessDriver.start() was not called")

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("process driver: %s", message)

    def _emit(self, action: str, record: Record, exit_code: int | None = None) -> None:
        event = ContainerEvent(
            action=action,  # type: ignore[arg-type]
            id=record.id,
            labels=dict(record.labels),
            exit_code=exit_code,
            time=time.time(),
        )
        for queue in list(self._subscribers):
            queue.put_nowait(event)

    # --- sandboxes --------------------------------------------------------------------------------

    async def create_sandbox(self, spec: SandboxSpec) -> Sandbox:
        self._ensure_started()
        if spec.share_process_namespace:
            self._warn_once(
                "pidns", "shareProcessNamespace is implicit: every process sees the host's processes"
            )
        labels = {
            **spec.labels,
            LABEL_MANAGED: "true",
            LABEL_AGENT: self.agent_id,
            LABEL_CONTAINER: INFRA_CONTAINER,
        }
        # an address something listens on is taken too: a pod another agent left running in this slot's range
        # (the slot's agent stopped, its pods keep running for it to adopt) keeps its address
        listening = await asyncio.to_thread(listening_addresses)
        async with self._lock:
            used = {r.address for r in self._records.values() if r.kind == "sandbox" and r.address} | listening
            address = pick_address(used, self.pod_network)  # type: ignore[arg-type]
            record = Record(
                id="sb-" + secrets.token_hex(8),
                labels=labels,
                kind="sandbox",
                address=address,
                started_at=time.time(),
                env={"HOSTNAME": spec.hostname, "POD_NAME": spec.pod, "POD_NAMESPACE": spec.namespace},
            )
            for volume in (v for v in spec.volumes if v.name not in spec.mounts):
                await asyncio.to_thread(_mkdir, self.volumes_dir / record.id / volume.name)
            self._save(record)
        self._emit("start", record)
        return Sandbox(id=record.id, address=address)

    async def remove_sandbox(self, sandbox_id: str) -> None:
        """Removes the sandbox's containers (killing live ones), its volumes and its address."""
        for member in [r for r in self._records.values() if r.sandbox == sandbox_id]:
            await self.remove_container(member.id)
        record = self._records.get(sandbox_id)
        if record is None:
            return
        await asyncio.to_thread(_rmtree, self.volumes_dir / sandbox_id)
        self._forget(sandbox_id)
        self._emit("die", record, 0)
        self._emit("destroy", record)

    # --- containers -------------------------------------------------------------------------------

    async def start_container(self, spec: ContainerSpec) -> str:
        self._ensure_started()
        c = spec.container
        sandbox = self._records.get(spec.sandbox.id)
        if sandbox is None:
            raise ContainerNotFound(f"sandbox {spec.sandbox.id} does not exist")
        defined = {**sandbox.env, "POD_IP": spec.sandbox.address, **port_env(c)}
        command, args, expanded_env = expand_container(c, defined)  # $(VAR) references, as the kubelet does
        argv = [*command, *args]
        if not argv:
            raise DriverError(
                f"container {c.name}: the process driver needs `command` (or `args`): it cannot run an image's "
                f"default entrypoint ({c.image})"
            )
        refusal = process_refusal(spec.security, agent_uid=os.geteuid(), pod=spec.pod_ref or spec.spec.pod,
                                  container=c.name)
        if refusal is not None:
            raise ContainerConfigError(refusal)
        credentials = popen_credentials(spec.security, agent_uid=os.geteuid())
        if spec.security.no_new_privileges:
            credentials["preexec_fn"] = no_new_privs
        if c.resources.limits.cpu_millicores or c.resources.limits.memory_bytes:
            self._warn_once("limits", "resources.limits (cpu, memory) are not enforced for local processes")
        container_id = "pc-" + secrets.token_hex(8)
        env = {**pod_base_env(), **defined, **{e.name: e.value for e in expanded_env}, ID_VARIABLE: container_id}
        for vm in c.volume_mounts:
            self._warn_once(
                "volumes",
                "volumes are directories given in env MESHD_VOLUME_<NAME>, not mounted at mountPath",
            )
            if vm.mount_path in spec.mount_sources:  # a config volume meshd writes (with subPath: that file)
                env["MESHD_VOLUME_" + vm.name.upper().replace("-", "_")] = spec.mount_sources[vm.mount_path]
                continue
            source = spec.spec.mounts.get(vm.name)
            if source is None and needs_source(spec.spec.volumes, vm.name):
                raise DriverError(f"container {c.name}: volume {vm.name!r} has no source yet (never mounted empty)")
            path = Path(source.source) if source is not None else self.volumes_dir / spec.sandbox.id / vm.name
            if source is None:
                await asyncio.to_thread(_mkdir, path)
                await asyncio.to_thread(own_volume, str(path), spec.spec.fs_group)
            env["MESHD_VOLUME_" + vm.name.upper().replace("-", "_")] = str(path)
        cwd = c.working_dir or self._cwd
        labels = {
            **spec.spec.labels,
            LABEL_MANAGED: "true",
            LABEL_AGENT: self.agent_id,
            LABEL_CONTAINER: c.name,
            LABEL_RESTART_COUNT: str(spec.restart_count),
            LABEL_SANDBOX: spec.sandbox.id,
        }
        log_path = self.logs_dir / f"{container_id}.log"
        log_file = await asyncio.to_thread(open, log_path, "ab")
        with log_file:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    cwd=cwd,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stop signals reach its children too
                    **credentials,
                )
            except OSError as exc:
                raise DriverError(f"container {c.name}: cannot run {argv[0]!r}: {exc}") from exc
        record = Record(
            id=container_id,
            labels=labels,
            kind="container",
            sandbox=spec.sandbox.id,
            pid=proc.pid,
            proc_start=proc_start_time(proc.pid),
            state="running",
            started_at=time.time(),
            image=c.image,
            cwd=cwd,
            env=env,
        )
        self._save(record)
        await self._flush()
        self._procs[container_id] = proc
        self._exited[container_id] = asyncio.Event()
        self._emit("start", record)
        self._watchers[container_id] = asyncio.create_task(self._watch_child(container_id, proc))
        return container_id

    async def _watch_child(self, container_id: str, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        self._mark_exited(container_id, exit_status(code))

    async def _watch_adopted(self, container_id: str, pid: int) -> None:
        """Waits for a process that is not our child: pidfd readiness where available, else polling /proc."""
        record = self._records[container_id]
        loop = asyncio.get_running_loop()
        try:
            fd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            fd = -1
        try:
            if fd >= 0 and proc_alive(pid, record.proc_start):
                ready: asyncio.Future[None] = loop.create_future()

                def on_exit() -> None:
                    if not ready.done():
                        ready.set_result(None)

                loop.add_reader(fd, on_exit)
                try:
                    await ready
                finally:
                    loop.remove_reader(fd)
            else:
                while proc_alive(pid, record.proc_start):
                    await asyncio.sleep(0.2)
        finally:
            if fd >= 0:
                os.close(fd)
        self._mark_exited(container_id, None)  # not our child: the exit status is not ours to read

    def _mark_exited(self, container_id: str, exit_code: int | None) -> None:
        record = self._records.get(container_id)
        self._procs.pop(container_id, None)
        self._watchers.pop(container_id, None)
        if record is not None and record.state == "running":
            record = replace(record, state="exited", exit_code=exit_code, finished_at=time.time())
            self._save(record)
            self._emit("die", record, exit_code)
        event = self._exited.get(container_id)
        if event is not None:
            event.set()

    def _signal(self, record: Record, sig: int) -> bool:
        """Signals the container's process group, if its leader is still the process we started."""
        if record.pid is None or not proc_alive(record.pid, record.proc_start):
            return False
        try:
            os.killpg(record.pid, sig)
            return True
        except ProcessLookupError:
            return False

    async def stop_container(self, container_id: str, *, grace_seconds: float) -> None:
        """SIGTERM to the process group, SIGKILL after grace_seconds; a container already gone is fine."""
        record = self._records.get(container_id)
        if record is None or record.kind != "container" or record.state != "running":
            return
        exited = self._exited.setdefault(container_id, asyncio.Event())
        if self._signal(record, signal.SIGTERM):
            await done_within(exited.wait(), grace_seconds)
        if not exited.is_set():
            self._signal(record, signal.SIGKILL)
            await done_within(exited.wait(), 5)
        if not exited.is_set() and container_id not in self._watchers:
            self._mark_exited(container_id, None)

    async def remove_container(self, container_id: str) -> None:
        record = self._records.get(container_id)
        if record is None:
            return
        if record.kind == "sandbox":
            await self.remove_sandbox(container_id)
            return
        if record.state == "running":
            await self.stop_container(container_id, grace_seconds=0)
        record = self._records.get(container_id, record)
        self._forget(container_id)
        self._exited.pop(container_id, None)
        self._emit("destroy", record)

    # --- observation ------------------------------------------------------------------------------

    async def list_managed(self) -> list[ObservedContainer]:
        out = []
        for record in list(self._records.values()):
            unwatched = (
                record.kind == "container" and record.state == "running" and record.id not in self._watchers
            )
            if unwatched and record.pid is not None and not proc_alive(record.pid, record.proc_start):
                self._mark_exited(record.id, None)  # died while nobody watched it
                record = self._records.get(record.id, record)
            out.append(record.observed())
        return out

    async def inspect(self, container_id: str) -> ObservedContainer | None:
        record = self._records.get(container_id)
        return record.observed() if record else None

    async def events(self) -> AsyncIterator[ContainerEvent]:
        queue: asyncio.Queue[ContainerEvent] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)

    async def exec(self, container_id: str, command: tuple[str, ...], *, timeout: float) -> ExecResult:
        """Runs `command` on the host with the container's env and working directory."""
        record = self._records.get(container_id)
        if record is None:
            raise ContainerNotFound(f"container {container_id} does not exist")
        try:
            proc = await asyncio.create_subprocess_exec(
                *command,
                cwd=record.cwd or None,
                env={**pod_base_env(), **record.env},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            return ExecResult(
                exit_code=126 if not isinstance(exc, FileNotFoundError) else 127, output=str(exc).encode()
            )
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise ExecTimeout(f"exec {list(command)} in {container_id} timed out after {timeout}s") from None
        return ExecResult(exit_code=exit_status(proc.returncode or 0), output=output)

    async def open_exec(self, container_id: str, command: tuple[str, ...], *, stdin: bool,
                        tty: bool) -> ExecSession:
        """An interactive exec on the host, in the container's env and working directory."""
        record = self._records.get(container_id)
        if record is None:
            raise ContainerNotFound(f"container {container_id} does not exist")
        try:
            return await ProcessExecSession.start(command, cwd=record.cwd or None,
                                                  env={**pod_base_env(), **record.env}, stdin=stdin, tty=tty)
        except OSError as exc:
            raise DriverError(f"exec {list(command)} in {container_id}: {exc}") from exc

    async def logs(self, container_id: str, *, follow: bool, tail: int | None = None, since: float | None = None,
                   timestamps: bool = False) -> AsyncIterator[bytes]:
        """The log file's content (last `tail` lines); with follow, new output until the container exits. The
        file keeps no times: `timestamps` adds none, and `since` keeps all of it unless it was last written
        before `since` (exact when `since` is before the start or after the last write)."""
        path = self.logs_dir / f"{container_id}.log"
        record = self._records.get(container_id)
        if record is None:
            raise ContainerNotFound(f"container {container_id} does not exist")
        fh = await asyncio.to_thread(open, path, "rb")
        with fh:
            data = await asyncio.to_thread(fh.read)
            if (since is not None and (record.started_at or 0) < since
                    and (await asyncio.to_thread(os.fstat, fh.fileno())).st_mtime < since):
                data = b""
            if tail is not None:
                lines = data.splitlines(keepends=True)
                data = b"".join(lines[-tail:]) if tail > 0 else b""
            if data:
                yield data
            while follow:
                chunk = await asyncio.to_thread(fh.read, 65536)
                if chunk:
                    yield chunk
                    continue
                if await asyncio.to_thread(_was_truncated, fh):  # rotated: the live file starts again
                    fh.seek(0)
                    continue
                record = self._records.get(container_id)
                if record is None or record.state != "running":
                    rest = await asyncio.to_thread(fh.read)
                    if rest:
                        yield rest
                    return
                await asyncio.sleep(0.1)

    async def usage(self, container_id: str) -> Usage | None:
        """CPU seconds and resident memory summed over the container's process group, from /proc."""
        record = self._records.get(container_id)
        if record is None or record.pid is None or record.state != "running":
            return None
        return await asyncio.to_thread(process_group_usage, record.pid)


def process_group_usage(pgid: int) -> Usage | None:
    cpu_ticks = 0
    rss_pages = 0
    found = False
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        if ")" not in stat:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) != pgid:
            continue
        found = True
        cpu_ticks += int(fields[11]) + int(fields[12])  # utime + stime
        rss_pages += int(fields[21])
    if not found:
        return None
    return Usage(cpu_seconds=cpu_ticks / CLK_TCK, memory_bytes=rss_pages * PAGE_SIZE)


def _write_atomically(path: Path, text: str) -> None:
    """Readable by the owner only: a container's record keeps its env (Secret values too)."""
    tmp = path.with_suffix(".tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        out.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _mkdir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


def _was_truncated(fh: Any) -> bool:
    return os.fstat(fh.fileno()).st_size < fh.tell()


def _stop_orphans(path: Path, error: Exception) -> None:
    """A record that cannot be read no longer tells which process it ran: that process is found by the id in its
    environment and killed (never left running, holding its ports), and the record removed."""
    record_id = path.stem
    killed = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"{ID_VARIABLE}={record_id}".encode() in environ:
            with contextlib.suppress(OSError):
                os.kill(int(proc.name), signal.SIGKILL)  # its children carry the id too
                killed.append(proc.name)
    log.error("process driver: the record %s is damaged (%s): removed it%s", path, error,
              f" and killed its process {', '.join(killed)}" if killed else "")
    _unlink(path)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
