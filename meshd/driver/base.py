"""The Driver protocol: lifecycle verbs for pods and their containers (Nomad's driver plugin is the model).

A pod is a *sandbox* (the infra container holding the network/IPC/PID namespaces, its address and its
hostname; for the process driver, a loopback address) plus app containers joined to it. Every container a
driver creates carries the labels below, so a restarted agent can adopt what runs and remove what nobody wants.
All methods are coroutines and never block the event loop (the docker SDK runs in threads).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from meshd.driver.session import ExecSession
from meshd.model.objects import Container, Volume
from meshd.model.security import EffectiveSecurity

LABEL_MANAGED = "io.meshd.managed"
LABEL_NAMESPACE = "io.meshd.namespace"
LABEL_POD = "io.meshd.pod"
LABEL_OWNER = "io.meshd.owner"  # the top-level object: Deployment, bare ReplicaSet, or bare Pod
LABEL_OWNER_KIND = "io.meshd.owner-kind"
LABEL_REPLICASET = "io.meshd.replicaset"  # "" for bare pods
LABEL_TEMPLATE_HASH = "io.meshd.pod-template-hash"
LABEL_CONTAINER = "io.meshd.container"  # the container's name; INFRA_CONTAINER for the sandbox
LABEL_RESTART_COUNT = "io.meshd.restart-count"
LABEL_AGENT = "io.meshd.agent"  # the state dir's identity, so two agents on one engine keep apart
INFRA_CONTAINER = "POD"


class DriverError(Exception):
    """The engine failed or is unreachable; the message says what to do."""


class ContainerConfigError(DriverError):
    """The container's spec cannot run as asked (runAsNonRoot and a root image): the kubelet's
    CreateContainerConfigError; retried with back-off, as the spec or the image may change."""


@dataclass(frozen=True)
class MountSource:
    """Where a pod volume that is not an emptyDir comes from (a claim's volume, a hostPath): a Docker named volume
    ("volume") or a path of this machine ("bind")."""

    type: Literal["volume", "bind"]
    source: str
    read_only: bool = False  # every mount of it is read-only (a ReadOnlyMany claim, readOnly: true)


def needs_source(volumes: tuple[Volume, ...], name: str) -> bool:
    """Whether the pod volume is a claim or a hostPath (mounted from a MountSource, never as an empty volume)."""
    return any(v.name == name and (v.host_path is not None or v.persistent_volume_claim is not None)
               for v in volumes)


@dataclass(frozen=True)
class SandboxSpec:
    """A pod's shared part."""

    namespace: str
    pod: str
    hostname: str
    labels: Mapping[str, str]  # io.meshd.* labels (without io.meshd.container)
    volumes: tuple[Volume, ...] = ()
    share_process_namespace: bool = False
    dns_search: tuple[str, ...] = ()  # e.g. ("default.svc.cluster.local", "svc.cluster.local", "cluster.local")
    mounts: Mapping[str, MountSource] = field(default_factory=dict)  # volume name -> its source (not emptyDir)
    fs_group: int | None = None  # securityContext.fsGroup: the group that owns the pod's volumes


@dataclass(frozen=True)
class Sandbox:
    id: str  # the infra container's id (process driver: a synthetic id)
    address: str  # the pod's address, reachable from this host


@dataclass(frozen=True)
class ContainerSpec:
    sandbox: Sandbox
    spec: SandboxSpec
    container: Container = field(repr=False)  # its env may hold Secret values
    restart_count: int = 0
    mount_sources: Mapping[str, str] = field(default_factory=dict)  # mountPath -> a host path (meshd.volumes)
    registry_auth: Mapping[str, str] | None = field(default=None, repr=False)  # from imagePullSecrets
    security: EffectiveSecurity = EffectiveSecurity()  # the container's securityContext over the pod's
    pod_ref: str = ""  # the pod as the kubelet names it in messages: name_namespace(uid)


ContainerState = Literal["created", "running", "exited"]


@dataclass(frozen=True)
class ObservedContainer:
    """A labelled container as the engine reports it."""

    id: str
    labels: Mapping[str, str]
    state: ContainerState
    image: str = ""
    exit_code: int | None = None
    oom_killed: bool = False
    started_at: float | None = None  # unix time
    finished_at: float | None = None
    address: str | None = None  # the sandbox's address (infra containers only)

    @property
    def namespace(self) -> str:
        return self.labels.get(LABEL_NAMESPACE, "")

    @property
    def pod(self) -> str:
        return self.labels.get(LABEL_POD, "")

    @property
    def container(self) -> str:
        return self.labels.get(LABEL_CONTAINER, "")

    @property
    def is_infra(self) -> bool:
        return self.container == INFRA_CONTAINER

    @property
    def restart_count(self) -> int:
        return int(self.labels.get(LABEL_RESTART_COUNT, "0") or 0)


@dataclass(frozen=True)
class ContainerEvent:
    """start | die | oom | destroy, for a labelled container."""

    action: Literal["start", "die", "oom", "destroy"]
    id: str
    labels: Mapping[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    time: float = 0.0  # unix time


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: bytes


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float  # cumulative CPU time
    memory_bytes: int


class Driver(Protocol):
    name: str

    async def start(self) -> None:
        """Prepares the engine (network, infra image); raises DriverError with a clear message."""

    async def close(self) -> None: ...

    async def create_sandbox(self, spec: SandboxSpec) -> Sandbox: ...

    async def remove_sandbox(self, sandbox_id: str) -> None: ...

    async def start_container(self, spec: ContainerSpec) -> str:
        """Creates and starts one app container joined to the sandbox; returns its id."""

    async def stop_container(self, container_id: str, *, grace_seconds: float) -> None:
        """SIGTERM, then SIGKILL after grace_seconds; a container already gone is not an error."""

    async def remove_container(self, container_id: str) -> None: ...

    async def list_managed(self) -> list[ObservedContainer]:
        """Every container labelled io.meshd.managed=true for this agent (racing removals are skipped)."""

    def events(self) -> AsyncIterator[ContainerEvent]:
        """The engine's container events for managed containers, as they happen."""

    async def exec(self, container_id: str, command: tuple[str, ...], *, timeout: float) -> ExecResult: ...

    async def open_exec(self, container_id: str, command: tuple[str, ...], *, stdin: bool,
                        tty: bool) -> ExecSession:
        """Starts `command` in the container with streamed stdio (a pty with tty); raises DriverError."""

    def logs(self, container_id: str, *, follow: bool, tail: int | None = None, since: float | None = None,
             timestamps: bool = False) -> AsyncIterator[bytes]:
        """stdout+stderr: the last `tail` lines, only those written after `since` (unix time), each prefixed with
        its RFC 3339 time with `timestamps` (where the driver keeps times); with follow, new output as it comes."""

    async def usage(self, container_id: str) -> Usage | None: ...

