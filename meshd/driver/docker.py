"""The Docker driver: pods as an infra ("pause") container holding the namespaces plus app containers joined to it.

Every docker SDK call is blocking, so each runs in a thread of a pool sized for parallel starts, under a timeout
(a wedged engine must not wedge the agent). Engine errors become DriverError with a message that says what to do.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ipaddress
import itertools
import logging
import math
import os
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from meshd.driver import ContainerNotFound, ExecTimeout
from meshd.driver.base import (
    INFRA_CONTAINER,
    LABEL_AGENT,
    LABEL_CONTAINER,
    LABEL_MANAGED,
    LABEL_RESTART_COUNT,
    ContainerEvent,
    ContainerConfigError,
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
from meshd.driver.docker_attach import DockerAttachSession, create_stdin_once
from meshd.driver.docker_exec import DockerExecSession
from meshd.driver.docker_security import docker_security_options, needs_image_user
from meshd.driver.linkaddresses import LinkAddresses
from meshd.driver.metrics import DOCKER_CALL_DURATION, DOCKER_CALL_ERRORS, call_kind
from meshd.driver.session import ExecSession
from meshd.images.builders import builder_for
from meshd.logfiles import MAX_FILES, MAX_SIZE
from meshd.model.expansion import expand_container
from meshd.model.security import non_root_refusal
from meshd.model.objects import Volume

log = logging.getLogger(__name__)

T = TypeVar("T")

LABEL_SANDBOX = "io.meshd.sandbox"  # on app containers and volumes: the infra container's id
EVENT_ACTIONS = frozenset({"start", "die", "oom", "destroy"})
CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTAINER_LOG_CONFIG = {"type": "json-file", "config": {"max-size": f"{MAX_SIZE // 2**20}m", "max-file": str(MAX_FILES)}}
CLOSE_WAIT_SECONDS = 10.0  # how long close() waits for engine calls already running


def pod_network_plan(subnet: str) -> tuple[str, str]:
    """(gateway, ip_range) for a pod subnet: the first host is the gateway, pods come from the lower half."""
    net = ipaddress.ip_network(subnet)
    gateway = str(next(net.hosts()))
    lower_half = next(net.subnets(prefixlen_diff=1))
    return gateway, str(lower_half)


def container_state(docker_state: str) -> ContainerState:
    if docker_state == "created":
        return "created"
    if docker_state in ("running", "paused", "restarting"):
        return "running"
    return "exited"


def parse_docker_time(value: str | None) -> float | None:
    """Docker's RFC 3339 nanosecond timestamps -> unix time; the zero time (never) -> None."""
    if not value or value.startswith("0001-01-01"):
        return None
    head, _, frac = value.rstrip("Z").partition(".")
    frac = "".join(itertools.takewhile(str.isdigit, frac))
    tz = value[len(head) + 1 + len(frac) :] if frac else value[len(head) :]
    tz = "+00:00" if tz in ("", "Z") else tz
    try:
        base = datetime.fromisoformat(head + tz).timestamp()
    except ValueError:
        return None
    return base + (float("0." + frac) if frac else 0.0)


def observed_from_inspect(attrs: Mapping[str, Any], network: str) -> ObservedContainer:
    """A `docker inspect` document -> ObservedContainer (exit code and OOMKilled included)."""
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    status = container_state(state.get("Status", "exited"))
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    address = (networks.get(network) or {}).get("IPAddress") or None
    return ObservedContainer(
        id=attrs["Id"],
        labels=dict(config.get("Labels") or {}),
        state=status,
        image=config.get("Image", ""),
        exit_code=None if status != "exited" else state.get("ExitCode"),
        oom_killed=bool(state.get("OOMKilled")),
        started_at=parse_docker_time(state.get("StartedAt")),
        finished_at=parse_docker_time(state.get("FinishedAt")) if status == "exited" else None,
        address=address,
    )


def event_from_docker(raw: Mapping[str, Any]) -> ContainerEvent | None:
    """A decoded `docker events` message -> ContainerEvent, or None for actions meshd does not follow."""
    if raw.get("Type") != "container":
        return None
    action = str(raw.get("Action") or raw.get("status") or "")
    if action not in EVENT_ACTIONS:
        return None
    attributes = dict((raw.get("Actor") or {}).get("Attributes") or {})
    exit_code = attributes.pop("exitCode", None)
    for key in ("image", "name", "execDuration", "signal"):
        attributes.pop(key, None)
    time_nano = raw.get("timeNano")
    return ContainerEvent(
        action=action,  # type: ignore[arg-type]
        id=str(raw.get("id") or (raw.get("Actor") or {}).get("ID")),
        labels=attributes,
        exit_code=int(exit_code) if exit_code not in (None, "") else None,
        time=time_nano / 1e9 if time_nano else float(raw.get("time") or 0),
    )


def exit_code_from_status(status: str) -> int | None:
    """`docker ps`'s "Exited (137) 3 seconds ago" -> 137."""
    match = re.match(r"Exited \((-?\d+)\)", status or "")
    return int(match.group(1)) if match else None


def catch_up(
    known: Mapping[str, Mapping[str, str]], summaries: list[Mapping[str, Any]], now: float
) -> tuple[list[ContainerEvent], dict[str, Mapping[str, str]]]:
    """Events missed while the stream was down, from the containers known running and a fresh listing.

    Returns the synthetic events (die/destroy for known ones that stopped or vanished, start for new running
    ones) and the new set of running containers.
    """
    current = {str(s["Id"]): s for s in summaries}
    events: list[ContainerEvent] = []
    for cid, labels in known.items():
        summary = current.get(cid)
        if summary is None:
            events.append(ContainerEvent(action="die", id=cid, labels=labels, time=now))
            events.append(ContainerEvent(action="destroy", id=cid, labels=labels, time=now))
        elif container_state(str(summary.get("State", ""))) != "running":
            code = exit_code_from_status(str(summary.get("Status", "")))
            events.append(ContainerEvent(action="die", id=cid, labels=labels, exit_code=code, time=now))
    running: dict[str, Mapping[str, str]] = {
        cid: dict(s.get("Labels") or {})
        for cid, s in current.items()
        if container_state(str(s.get("State", ""))) == "running"
    }
    events.extend(
        ContainerEvent(action="start", id=cid, labels=labels, time=now)
        for cid, labels in running.items()
        if cid not in known
    )
    return events, running


def kube_command(
    command: tuple[str, ...], args: tuple[str, ...]
) -> tuple[list[str] | None, list[str] | None]:
    """Kubernetes command/args -> Docker (entrypoint, cmd): command replaces ENTRYPOINT (and drops CMD), args CMD."""
    return (list(command) or None, list(args) or None)


def pod_nameservers(gateway: str, resolv_conf: str, *, limit: int = 3) -> list[str]:
    """The pods' resolvers: the agent on the bridge gateway first (the cluster zone; it refuses every other
    name), then the host's upstream servers, which Docker's embedded resolver asks next for a name the agent
    refuses, so pods resolve outside names as in Kubernetes while the agent stays no open resolver.
    Loopback servers are skipped: a pod cannot reach the host's 127.0.0.53."""
    servers = [gateway]
    for line in resolv_conf.splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0] != "nameserver":
            continue
        try:
            address = ipaddress.ip_address(fields[1].split("%")[0])
        except ValueError:
            continue
        if not address.is_loopback and str(address) not in servers:
            servers.append(str(address))
    return servers[:limit]


def _host_resolv_conf() -> str:
    """The host's resolver list, as Docker picks it (with systemd-resolved's upstream list, for a stub)."""
    texts = []
    for path in ("/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"):
        try:
            texts.append(Path(path).read_text())
        except OSError:
            continue
    return "\n".join(texts)


def volume_name(sandbox_id: str, volume: str) -> str:
    return f"meshd_{sandbox_id[:12]}_{volume}"


def _safe_name(*parts: str) -> str:
    return "_".join(p.replace("/", "-") for p in parts)[:200]


class DockerDriver:
    """Driver on the local Docker engine (API >= 1.41)."""

    name = "docker"

    def __init__(
        self,
        *,
        agent_id: str,
        network: str = "meshd0",
        subnet: str = "10.213.0.0/16",
        docker_host: str | None = None,
        call_timeout: float = 30,
        pull_timeout: float = 600,
        pool_size: int = 32,
        pause_image: str | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.network = network
        self.subnet = subnet
        self.gateway, self.ip_range = pod_network_plan(subnet)
        self._resolv_conf = ""  # the host's, read at start()
        self.pod_resolver: str | None = None  # the agent's own DNS address when another agent has the gateway's
        self.docker_host = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self._explicit_host = docker_host
        self.call_timeout = call_timeout
        self.pull_timeout = pull_timeout
        self.pause_image = pause_image
        self.event_stream_restarts = 0  # how often the events stream reconnected (consumers may resync)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=pool_size, thread_name_prefix="meshd-docker"
        )
        self._pool_size = pool_size
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._pull_locks: dict[str, asyncio.Lock] = {}
        self._streams: set[Any] = set()
        self._closed = False

    # --- plumbing -----------------------------------------------------------------------------------

    def _make_client(self, *, timeout: float | None) -> Any:
        import docker

        kwargs: dict[str, Any] = {"timeout": timeout, "max_pool_size": self._pool_size, "version": "auto"}
        try:
            if self._explicit_host:
                return docker.DockerClient(base_url=self._explicit_host, **kwargs)
            return docker.from_env(**kwargs)
        except Exception as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: BaseException) -> DriverError:
        return DriverError(
            f"Docker engine not reachable at {self.docker_host}: start dockerd or set DOCKER_HOST ({exc})"
        )

    def _docker(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client(timeout=self.call_timeout)
            return self._client

    async def _call(self, what: str, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """Runs a blocking engine call in the pool under a timeout; translates its errors."""
        if self._closed:
            raise DriverError("driver is closed")
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, self._guarded, what, fn, args)
        kind = call_kind(what)
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(future, timeout or self.call_timeout)
        except TimeoutError:
            DOCKER_CALL_ERRORS.labels(kind).inc()
            raise DriverError(
                f"docker {what} timed out after {timeout or self.call_timeout:.0f}s "
                f"(is the engine at {self.docker_host} wedged?)"
            ) from None
        except DriverError:
            DOCKER_CALL_ERRORS.labels(kind).inc()
            raise
        finally:
            DOCKER_CALL_DURATION.labels(kind).observe(time.perf_counter() - started)

    def _guarded(self, what: str, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        import docker.errors
        import requests.exceptions

        try:
            return fn(*args)
        except DriverError:
            raise
        except docker.errors.NotFound as exc:
            raise ContainerNotFound(f"docker {what}: {exc.explanation or exc}") from exc
        except docker.errors.APIError as exc:
            raise DriverError(f"docker {what}: {exc.explanation or exc}") from exc
        except (requests.exceptions.ConnectionError, ConnectionError, FileNotFoundError) as exc:
            with self._client_lock:
                self._client = None  # reconnect next time (the engine may have restarted)
            raise self._unreachable(exc) from exc
        except requests.exceptions.ReadTimeout as exc:
            raise DriverError(
                f"docker {what} timed out (is the engine at {self.docker_host} wedged?)"
            ) from exc
        except docker.errors.DockerException as exc:
            raise DriverError(f"docker {what}: {exc}") from exc

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Pings the engine, ensures the meshd bridge network and the pause image."""
        await self._call("ping", lambda: self._docker().ping())
        self._resolv_conf = await asyncio.to_thread(_host_resolv_conf)
        await self._call("network setup", self._ensure_network)
        if self.pause_image is None:
            from meshd.images import ImageBuildError, ensure_pause_image

            def build() -> str:
                try:
                    return ensure_pause_image(self._docker())
                except ImageBuildError as exc:
                    raise DriverError(f"cannot build the pod infra image: {exc}") from exc

            self.pause_image = await self._call("build pause image", build, timeout=self.pull_timeout)

    def _ensure_network(self) -> None:
        import docker.errors
        from docker.types import IPAMConfig, IPAMPool

        client = self._docker()
        for attempt in range(2):
            found = client.networks.list(names=[self.network])
            found = [n for n in found if n.name == self.network]
            if found:
                config = (found[0].attrs.get("IPAM") or {}).get("Config") or []
                if config and config[0].get("Gateway"):
                    self.gateway = config[0]["Gateway"]
                    self.subnet = config[0].get("Subnet", self.subnet)
                return
            try:
                client.networks.create(
                    self.network,
                    driver="bridge",
                    options={"com.docker.network.bridge.name": self.network[:15]},
                    ipam=IPAMConfig(
                        pool_configs=[
                            IPAMPool(subnet=self.subnet, gateway=self.gateway, iprange=self.ip_range)
                        ]
                    ),
                    labels={LABEL_MANAGED: "true"},
                    check_duplicate=True,
                )
                return
            except docker.errors.APIError as exc:
                if attempt == 0 and exc.status_code == 409:  # created concurrently by another agent
                    continue
                raise DriverError(
                    f"cannot create docker network {self.network} ({self.subnet}): {exc.explanation or exc}"
                ) from exc

    async def close(self) -> None:
        self._closed = True
        for stream in list(self._streams):
            with contextlib.suppress(Exception):
                stream.close()
        # Calls already running finish before close returns (bounded): a closed driver changes nothing on the
        # engine any more, so whoever adopts the containers next (a new agent) sees what they left.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True), CLOSE_WAIT_SECONDS
            )
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    # --- service addresses on the bridge -------------------------------------------------------------

    async def add_service_address(self, ip: str) -> None:
        """Adds ip/32 to the bridge so host processes (the node sidecar) can bind it; idempotent."""
        await LinkAddresses(self.network).add(ip)

    async def remove_service_address(self, ip: str) -> None:
        await LinkAddresses(self.network).remove(ip)

    async def service_addresses(self) -> list[str]:
        """The /32 addresses on the bridge now (every agent's Service addresses and resolvers)."""
        return await LinkAddresses(self.network).list()

    # --- sandboxes ---------------------------------------------------------------------------------

    def _base_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        out = dict(labels)
        out[LABEL_MANAGED] = "true"
        out[LABEL_AGENT] = self.agent_id
        return out

    async def create_sandbox(self, spec: SandboxSpec) -> Sandbox:
        labels = self._base_labels(spec.labels)
        labels[LABEL_CONTAINER] = INFRA_CONTAINER
        name = _safe_name("meshd", spec.namespace, spec.pod, INFRA_CONTAINER, secrets.token_hex(3))

        def create() -> Sandbox:
            client = self._docker()
            if self.pause_image is None:
                raise DriverError("DockerDriver.start() was not called (no pause image)")
            container = client.containers.create(
                self.pause_image,
                name=name,
                hostname=spec.hostname[:63],
                labels=labels,
                network=self.network,
                init=True,
                dns=pod_nameservers(self.pod_resolver or self.gateway, self._resolv_conf),
                dns_search=list(spec.dns_search),
                dns_opt=["ndots:5"],
                ipc_mode="shareable",
                detach=True,
            )
            try:
                for volume in (v for v in spec.volumes if v.name not in spec.mounts and not v.is_config):
                    opts = {"type": "tmpfs", "device": "tmpfs"} if volume.medium == "Memory" else None
                    if opts is not None and spec.fs_group is not None:  # fsGroup owns the pod's volumes
                        opts["o"] = f"mode=2777,gid={spec.fs_group}"
                    client.volumes.create(
                        name=volume_name(container.id, volume.name),
                        driver="local",
                        driver_opts=opts,
                        labels={**labels, LABEL_SANDBOX: container.id, LABEL_CONTAINER: ""},
                    )
                emptydirs = tuple(v for v in spec.volumes if v.name not in spec.mounts)
                self._open_volumes(client, container.id, emptydirs, fs_group=spec.fs_group)
                container.start()
                container.reload()
            except Exception:
                with contextlib.suppress(Exception):
                    self._remove_sandbox_sync(container.id)
                raise
            observed = observed_from_inspect(container.attrs, self.network)
            if not observed.address:
                raise DriverError(f"sandbox {name} has no address on network {self.network}")
            return Sandbox(id=container.id, address=observed.address)

        return await self._call(f"create sandbox for {spec.namespace}/{spec.pod}", create)

    def _open_volumes(self, client: Any, sandbox_id: str, volumes: tuple[Volume, ...], *,
                      fs_group: int | None = None) -> None:
        """emptyDir directories are world-writable (0777) as the kubelet makes them, so an image running as a
        non-root USER can write to them; a new Docker volume is root's 0755. A one-shot container of the
        infra image sets the mode (tmpfs volumes are 1777 already). With the pod's fsGroup the group owns
        them, setgid (2777), so files made in them belong to it too."""
        from docker.types import Mount

        disk = [v for v in volumes if v.medium != "Memory" and v.is_empty_dir]
        if not disk:
            return
        targets = [f"/volumes/{i}" for i in range(len(disk))]
        command = ["/bin/busybox", "chmod", "0777", *targets] if fs_group is None else \
            ["/bin/busybox", "sh", "-c", 'chgrp "$0" "$@" && chmod 2777 "$@"', str(fs_group), *targets]
        client.containers.run(
            self.pause_image,
            command,
            mounts=[Mount(target=t, source=volume_name(sandbox_id, v.name), type="volume")
                    for t, v in zip(targets, disk)],
            network_mode="none",
            # io.meshd.created: the controller's garbage collector leaves a container this young alone (without
            # it, a collection running during the chmod killed it: the pod's start failed with exit 137)
            labels={LABEL_MANAGED: "true", LABEL_AGENT: self.agent_id, LABEL_SANDBOX: sandbox_id,
                    "io.meshd.created": f"{time.time():.3f}"},
            remove=True,
        )

    async def remove_sandbox(self, sandbox_id: str) -> None:
        """Removes the infra container, any app container still joined to it, and the pod's volumes."""
        await self._call(f"remove sandbox {sandbox_id[:12]}", self._remove_sandbox_sync, sandbox_id)

    def _remove_sandbox_sync(self, sandbox_id: str) -> None:
        import docker.errors

        api = self._docker().api
        members = api.containers(all=True, filters={"label": f"{LABEL_SANDBOX}={sandbox_id}"})
        for member in [*members, {"Id": sandbox_id}]:
            with contextlib.suppress(docker.errors.NotFound):
                self._remove_quietly(api, member["Id"])
        for volume in api.volumes(filters={"label": f"{LABEL_SANDBOX}={sandbox_id}"}).get("Volumes") or []:
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_volume(volume["Name"], force=True)

    @staticmethod
    def _remove_quietly(api: Any, container_id: str) -> None:
        import docker.errors

        try:
            api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409 or "in progress" not in str(exc.explanation):
                raise

    # --- app containers ----------------------------------------------------------------------------

    async def ensure_image(self, image: str, policy: str, *, auth: Mapping[str, str] | None = None) -> None:
        """Applies imagePullPolicy: Never (must exist), IfNotPresent (pull if missing), Always (pull); `auth` is the
        registry's credentials from imagePullSecrets (else the engine's own)."""
        if policy not in ("Always", "IfNotPresent", "Never"):
            raise DriverError(f"unknown imagePullPolicy {policy!r}")
        present = await self._call(f"inspect image {image}", self._image_present, image)
        if not present and policy != "Never" and await self._build_own_image(image):
            return
        if present and builder_for(image) is not None:
            return  # meshd's own images are built here, never pulled
        if policy == "Never":
            if not present:
                raise DriverError(f"image {image} is not present and imagePullPolicy is Never")
            return
        if policy == "IfNotPresent" and present:
            return
        lock = self._pull_locks.setdefault(image, asyncio.Lock())
        async with lock:
            if policy == "IfNotPresent" and await self._call(
                f"inspect image {image}", self._image_present, image
            ):
                return  # pulled by a concurrent start
            try:
                await self._call(f"pull {image}", self._pull, image, auth, timeout=self.pull_timeout)
            except DriverError as exc:
                if present:
                    log.warning("pull of %s failed (%s); using the local image", image, exc)
                    return
                raise DriverError(f"cannot pull image {image}: {exc}") from exc

    async def _build_own_image(self, image: str) -> bool:
        """Builds one of meshd's own images (meshd/busybox, meshd/python) offline; False for any other image."""
        build = builder_for(image)
        if build is None:
            return False
        from meshd.images import ImageBuildError

        def run() -> str:
            try:
                return build(self._docker())
            except ImageBuildError as exc:
                raise DriverError(f"cannot build {image}: {exc}") from exc

        lock = self._pull_locks.setdefault(image, asyncio.Lock())
        async with lock:
            log.info("building %s offline (first use)", image)
            await self._call(f"build {image}", run, timeout=self.pull_timeout)
        return True

    def _image_user(self, image: str) -> str:
        """The image's USER ("" for none: root)."""
        return str((self._docker().api.inspect_image(image).get("Config") or {}).get("User") or "")

    def _image_present(self, image: str) -> bool:
        import docker.errors

        try:
            self._docker().api.inspect_image(image)
            return True
        except docker.errors.ImageNotFound:
            return False

    def _pull(self, image: str, auth: Mapping[str, str] | None = None) -> None:
        from docker.utils import parse_repository_tag

        repository, tag = parse_repository_tag(image)
        if tag is None and "@" not in repository:
            tag = "latest"
        client = self._make_client(timeout=self.pull_timeout)
        try:
            client.api.pull(repository, tag=tag, auth_config=dict(auth) if auth else None)
        finally:
            client.close()

    async def start_container(self, spec: ContainerSpec) -> str:
        c = spec.container
        await self.ensure_image(c.image, c.image_pull_policy, auth=spec.registry_auth)
        image_user = await self._call(f"inspect image {c.image}", self._image_user, c.image) \
            if needs_image_user(spec.security) else ""
        refusal = non_root_refusal(spec.security, image_user, pod=spec.pod_ref or spec.spec.pod, container=c.name)
        if refusal is not None:
            raise ContainerConfigError(refusal)
        sandbox_id = spec.sandbox.id
        labels = self._base_labels(spec.spec.labels)
        labels.update(
            {LABEL_CONTAINER: c.name, LABEL_RESTART_COUNT: str(spec.restart_count), LABEL_SANDBOX: sandbox_id}
        )
        command, args, env = expand_container(c)  # $(VAR) references, as the kubelet expands them
        entrypoint, cmd = kube_command(command, args)
        declared = {v.name for v in spec.spec.volumes}
        mounts = []
        from docker.types import Mount

        for vm in c.volume_mounts:
            if vm.name not in declared:
                raise DriverError(f"container {c.name}: volumeMount {vm.name!r} names no volume of the pod")
            if vm.mount_path in spec.mount_sources:  # files meshd writes (configMap, secret, ...): read-only
                mounts.append(Mount(target=vm.mount_path, source=spec.mount_sources[vm.mount_path], type="bind",
                                    read_only=True))
                continue
            source = spec.spec.mounts.get(vm.name)
            if source is None and needs_source(spec.spec.volumes, vm.name):
                raise DriverError(f"container {c.name}: volume {vm.name!r} has no source yet (never mounted empty)")
            if source is not None:  # a claim's volume or a hostPath
                mounts.append(Mount(target=vm.mount_path, source=source.source, type=source.type,
                                    read_only=vm.read_only or source.read_only,
                                    **({"no_copy": True} if source.type == "volume" else {})))
                continue
            mounts.append(
                Mount(target=vm.mount_path, source=volume_name(sandbox_id, vm.name), type="volume",
                      read_only=vm.read_only, no_copy=True)  # an emptyDir is empty: no copy of the image's files
            )  # fmt: skip
        kwargs: dict[str, Any] = {
            "name": _safe_name(
                "meshd",
                spec.spec.namespace,
                spec.spec.pod,
                c.name,
                str(spec.restart_count),
                secrets.token_hex(3),
            ),
            "entrypoint": entrypoint,
            "command": cmd,
            "environment": [f"{e.name}={e.value}" for e in env],
            "labels": labels,
            "network_mode": f"container:{sandbox_id}",
            "ipc_mode": f"container:{sandbox_id}",
            "init": True,
            "mounts": mounts,
            "detach": True,
            "log_config": CONTAINER_LOG_CONFIG,  # the kubelet's defaults: 10 MiB x 5 files
        }
        if spec.spec.share_process_namespace:
            kwargs["pid_mode"] = f"container:{sandbox_id}"
        if c.working_dir:
            kwargs["working_dir"] = c.working_dir
        if c.stdin or c.tty:  # `kubectl run -it`: attach finds its stdin open (and a terminal)
            kwargs.update(stdin_open=c.stdin, tty=c.tty)
        kwargs.update(docker_security_options(spec.security, image_user))  # securityContext, enforced
        limits = c.resources.limits
        if limits.cpu_millicores:
            kwargs["nano_cpus"] = limits.cpu_millicores * 1_000_000
        if limits.memory_bytes:
            kwargs["mem_limit"] = limits.memory_bytes
            kwargs["memswap_limit"] = limits.memory_bytes  # no swap: the limit is the limit, as in Kubernetes

        def create_and_start() -> str:
            if c.stdin_once:  # the SDK cannot say StdinOnce: meshd.driver.docker_attach can
                container = create_stdin_once(lambda: self._make_client(timeout=60), c.image, kwargs)
            else:
                container = self._docker().containers.create(c.image, **kwargs)
            try:
                container.start()
            except Exception:
                with contextlib.suppress(Exception):
                    container.remove(force=True)
                raise
            finally:
                if c.stdin_once:
                    container.client.close()  # the client of its own
            return str(container.id)

        return await self._call(
            f"start container {c.name} of {spec.spec.namespace}/{spec.spec.pod}", create_and_start
        )

    async def stop_container(self, container_id: str, *, grace_seconds: float) -> None:
        """SIGTERM, then SIGKILL after grace_seconds (rounded up to whole seconds, as the engine counts)."""
        grace = max(0, math.ceil(grace_seconds))
        try:
            await self._call(
                f"stop {container_id[:12]}",
                lambda: self._docker().api.stop(container_id, timeout=grace),
                timeout=grace + self.call_timeout,
            )
        except ContainerNotFound:
            pass

    async def remove_container(self, container_id: str) -> None:
        await self._call(
            f"remove {container_id[:12]}", lambda: self._remove_quietly(self._docker().api, container_id)
        )

    # --- observation -------------------------------------------------------------------------------

    async def list_managed(self) -> list[ObservedContainer]:
        filters = {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_AGENT}={self.agent_id}"]}
        summaries = await self._call(
            "list containers", lambda: self._docker().api.containers(all=True, filters=filters)
        )
        results = await asyncio.gather(*(self.inspect(s["Id"]) for s in summaries), return_exceptions=True)
        observed: list[ObservedContainer] = []
        for result in results:
            if isinstance(result, ContainerNotFound) or result is None:
                continue  # removed while we listed
            if isinstance(result, BaseException):
                raise result
            observed.append(result)
        return observed

    async def inspect(self, container_id: str) -> ObservedContainer | None:
        """One container's state (exit code, OOMKilled, times, sandbox address), None when it is gone."""
        try:
            attrs = await self._call(
                f"inspect {container_id[:12]}", lambda: self._docker().api.inspect_container(container_id)
            )
        except ContainerNotFound:
            return None
        return observed_from_inspect(attrs, self.network)

    async def events(self) -> AsyncIterator[ContainerEvent]:
        """Managed containers' start/die/oom/destroy events, as they happen.

        When the engine goes away the stream reconnects with backoff, replays from the last event seen, and
        reports what a fresh listing shows it missed (die/destroy/start), so a consumer never needs to poll.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[ContainerEvent | BaseException] = asyncio.Queue()
        stop = threading.Event()
        holder: dict[str, Any] = {}
        thread = threading.Thread(
            target=self._pump_events,
            args=(loop, queue, stop, holder),
            name="meshd-docker-events",
            daemon=True,
        )
        thread.start()
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            stream = holder.get("stream")
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()
            client = holder.get("client")
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()

    def _pump_events(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[ContainerEvent | BaseException],
        stop: threading.Event,
        holder: dict[str, Any],
    ) -> None:
        filters = {
            "type": "container",
            "label": [f"{LABEL_MANAGED}=true", f"{LABEL_AGENT}={self.agent_id}"],
            "event": sorted(EVENT_ACTIONS),
        }
        since: str | None = None
        seen: dict[tuple[str, str, int], None] = {}
        running: dict[str, Mapping[str, str]] = {}  # what we believe runs, to catch up after a reconnect
        caught_up: set[tuple[str, str]] = set()  # (id, action) already reported by a catch-up
        backoff = 0.2
        first = True

        def emit(event: ContainerEvent) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        while not stop.is_set() and not loop.is_closed():
            try:
                client = self._make_client(timeout=None)
                holder["client"] = client
                if since is None:
                    since = f"{time.time():.9f}"
                stream = client.api.events(decode=True, filters=filters, since=since)
                holder["stream"] = stream
                self._streams.add(stream)
                listing = client.api.containers(all=True, filters={"label": filters["label"]})
                missed, running = catch_up(running, listing, time.time())
                if not first:
                    self.event_stream_restarts += 1
                    log.info("docker events stream reconnected; %d missed events", len(missed))
                    for missed_event in missed:
                        caught_up.add((missed_event.id, missed_event.action))
                        emit(missed_event)
                first = False
                backoff = 0.2
                for raw in stream:
                    if stop.is_set():
                        break
                    nano = int(raw.get("timeNano") or 0)
                    key = (str(raw.get("id")), str(raw.get("Action")), nano)
                    if key in seen:
                        continue  # replayed after a reconnect
                    seen[key] = None
                    if len(seen) > 4096:
                        for old in list(seen)[:2048]:
                            del seen[old]
                    if nano:
                        since = f"{nano // 1_000_000_000}.{nano % 1_000_000_000:09d}"
                    update = event_from_docker(raw)
                    if update is None or (update.id, update.action) in caught_up:
                        continue
                    if update.action == "start":
                        running[update.id] = update.labels
                    elif update.action in ("die", "destroy"):
                        running.pop(update.id, None)
                    emit(update)
                self._streams.discard(stream)
            except Exception as exc:  # noqa: BLE001 - engine gone or restarting: retry with backoff
                if stop.is_set():
                    break
                log.warning("docker events stream failed (%s); retrying in %.1fs", exc, backoff)
            if stop.wait(backoff):
                break
            backoff = min(backoff * 2, 5.0)

    async def exec(self, container_id: str, command: tuple[str, ...], *, timeout: float) -> ExecResult:
        """Runs `command` in the container; raises ExecTimeout (a DriverError and TimeoutError) past `timeout`."""

        def run() -> ExecResult:
            api = self._docker().api
            exec_id = api.exec_create(container_id, list(command), stdout=True, stderr=True)["Id"]
            output = api.exec_start(exec_id)
            code = api.exec_inspect(exec_id).get("ExitCode")
            return ExecResult(exit_code=int(code if code is not None else -1), output=output or b"")

        try:
            return await self._call(f"exec in {container_id[:12]}", run, timeout=timeout)
        except DriverError as exc:
            if "timed out" in str(exc):
                raise ExecTimeout(
                    f"exec {list(command)} in {container_id[:12]} timed out after {timeout}s"
                ) from exc
            raise

    async def open_exec(self, container_id: str, command: tuple[str, ...], *, stdin: bool,
                        tty: bool) -> ExecSession:
        """An interactive exec (exec_create/exec_start with a hijacked socket), on a client of its own."""
        try:
            return await DockerExecSession.start(lambda: self._make_client(timeout=None), container_id, command,
                                                 stdin=stdin, tty=tty)
        except DriverError:
            raise
        except Exception as exc:
            raise DriverError(f"exec {list(command)} in {container_id[:12]}: {exc}") from exc

    async def open_attach(self, container_id: str, *, stdin: bool, tty: bool) -> ExecSession:
        """The container's own stdio (`kubectl attach -i`, `kubectl run -it`), on a client of its own."""
        try:
            return await DockerAttachSession.attach(lambda: self._make_client(timeout=None), container_id,
                                                    stdin=stdin, tty=tty)
        except Exception as exc:
            raise DriverError(f"attach to {container_id[:12]}: {exc}") from exc

    async def logs(self, container_id: str, *, follow: bool, tail: int | None = None, since: float | None = None,
                   timestamps: bool = False) -> AsyncIterator[bytes]:
        """stdout+stderr of the container as chunks; with follow, until the container stops or the caller closes."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=256)
        holder: dict[str, Any] = {}
        stop = threading.Event()

        def put(item: bytes | BaseException | None) -> None:
            if loop.is_closed():
                stop.set()
                return
            fut = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
            while not stop.is_set() and not loop.is_closed():
                try:
                    fut.result(timeout=0.5)
                    return
                except concurrent.futures.TimeoutError:
                    continue

        def pump() -> None:
            try:
                client = self._make_client(timeout=None)
                holder["client"] = client
                stream = self._guarded(
                    f"logs {container_id[:12]}",
                    lambda: client.api.logs(
                        container_id, stream=True, follow=follow, tail="all" if tail is None else tail,
                        since=since if since and since > 0 else None, timestamps=timestamps,
                    ),
                    (),
                )
                holder["stream"] = stream
                for chunk in stream:
                    if stop.is_set():
                        return
                    put(chunk)
                put(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                if not stop.is_set():
                    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                        put(exc)

        thread = threading.Thread(target=pump, name="meshd-docker-logs", daemon=True)
        thread.start()
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            for key in ("stream", "client"):
                obj = holder.get(key)
                if obj is not None:
                    with contextlib.suppress(Exception):
                        obj.close()

    async def usage(self, container_id: str) -> Usage | None:
        """CPU seconds and working-set memory from the container's cgroup v1 files; None when unreadable."""
        return await asyncio.to_thread(read_cgroup_v1_usage, CGROUP_ROOT, "docker", container_id)


def read_cgroup_v1_usage(root: Path, parent: str, container_id: str) -> Usage | None:
    """Reads cpuacct.usage (ns) and memory.usage_in_bytes minus inactive file pages (kubelet's working set)."""
    try:
        cpu_ns = int((root / "cpuacct" / parent / container_id / "cpuacct.usage").read_text())
        mem_dir = root / "memory" / parent / container_id
        usage = int((mem_dir / "memory.usage_in_bytes").read_text())
        inactive = 0
        for line in (mem_dir / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "total_inactive_file":
                inactive = int(value)
                break
    except (OSError, ValueError):
        return None
    return Usage(cpu_seconds=cpu_ns / 1e9, memory_bytes=max(0, usage - inactive))
