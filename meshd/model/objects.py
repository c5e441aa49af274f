"""The manifest objects meshd understands: a subset of the Kubernetes API, as frozen values.

Field names follow Kubernetes in snake_case; defaults are Kubernetes' own. `manifests/` builds these from
YAML and keeps the document it came from in `raw` (used to persist desired state and to print objects).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from meshd.model.config import (
    DownwardAPIVolumeSource,
    EnvFromSource,
    KeyRef,
    ObjectVolumeSource,
    ProjectedVolumeSource,
)
from meshd.model.ingress import Ingress
from meshd.model.kept import KEPT
from meshd.model.scheduling import Scheduling

DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class ObjectMeta:
    name: str
    namespace: str = DEFAULT_NAMESPACE
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


# --- probes -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HTTPGetAction:
    port: int | str  # a number or the name of a containerPort
    path: str = "/"
    host: str | None = None
    scheme: Literal["HTTP", "HTTPS"] = "HTTP"
    http_headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TCPSocketAction:
    port: int | str


@dataclass(frozen=True)
class ExecAction:
    command: tuple[str, ...]


@dataclass(frozen=True)
class GRPCAction:
    port: int  # a number only (Kubernetes allows no port name here)
    service: str = ""  # the HealthCheckRequest's service ("" = the server as a whole)


ProbeHandler = HTTPGetAction | TCPSocketAction | ExecAction | GRPCAction


@dataclass(frozen=True)
class Probe:
    handler: ProbeHandler
    initial_delay_seconds: float = 0
    period_seconds: float = 10
    timeout_seconds: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3


# --- containers and pods --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerPort:
    container_port: int
    name: str | None = None
    protocol: Literal["TCP", "UDP"] = "TCP"
    host_port: int | None = None  # listened on at the node's external address (meshd/external/)
    host_ip: str | None = None  # that address instead of the external one(s)


@dataclass(frozen=True)
class ResourceFieldRef:
    """env valueFrom.resourceFieldRef: a container's limit or request, in units of `divisor`."""

    resource: Literal["limits.cpu", "limits.memory", "requests.cpu", "requests.memory"]
    container_name: str = ""  # "" is the container the variable belongs to
    divisor: int = 1  # millicores for cpu ("1" = 1000), bytes for memory


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str = ""
    field_path: str | None = None  # valueFrom.fieldRef.fieldPath (the downward API), resolved at start
    resource_field: ResourceFieldRef | None = None  # valueFrom.resourceFieldRef, resolved at start
    key_ref: KeyRef | None = None  # valueFrom.configMapKeyRef / secretKeyRef, resolved at start


@dataclass(frozen=True)
class ResourceList:
    cpu_millicores: int | None = None  # "500m" -> 500, "2" -> 2000
    memory_bytes: int | None = None  # "64Mi" -> 67108864


@dataclass(frozen=True)
class Resources:
    limits: ResourceList = ResourceList()
    requests: ResourceList = ResourceList()


@dataclass(frozen=True)
class VolumeMount:
    name: str
    mount_path: str
    read_only: bool = False
    sub_path: str = ""  # a path inside the volume mounted instead of its root


@dataclass(frozen=True)
class HostPathVolumeSource:
    path: str
    type: str = ""  # "", DirectoryOrCreate, Directory, FileOrCreate, File, Socket, CharDevice, BlockDevice


@dataclass(frozen=True)
class PersistentVolumeClaimVolumeSource:
    claim_name: str
    read_only: bool = False


@dataclass(frozen=True)
class Volume:
    name: str  # an emptyDir volume unless one of the optional sources below is set
    medium: Literal["", "Memory"] = ""
    host_path: HostPathVolumeSource | None = None
    persistent_volume_claim: PersistentVolumeClaimVolumeSource | None = None
    config_map: ObjectVolumeSource | None = None
    secret: ObjectVolumeSource | None = None
    projected: ProjectedVolumeSource | None = None
    downward_api: DownwardAPIVolumeSource | None = None

    @property
    def is_empty_dir(self) -> bool:
        """No source is set: an emptyDir (the default, as in Kubernetes)."""
        return all(getattr(self, f.name) is None for f in fields(self) if f.name not in ("name", "medium"))

    @property
    def is_config(self) -> bool:
        """Files meshd writes from ConfigMaps, Secrets or the downward API (see meshd.volumes)."""
        return any(s is not None for s in (self.config_map, self.secret, self.projected, self.downward_api))


@dataclass(frozen=True)
class PreStop:
    """lifecycle.preStop: an exec command or a sleep, run before SIGTERM."""

    exec_command: tuple[str, ...] | None = None
    sleep_seconds: float | None = None


@dataclass(frozen=True)
class SecurityContext:
    """A container's securityContext (None: not set, the pod's or the runtime's default applies)."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    read_only_root_filesystem: bool | None = None
    allow_privilege_escalation: bool | None = None
    privileged: bool | None = None
    capabilities_add: tuple[str, ...] = ()
    capabilities_drop: tuple[str, ...] = ()


@dataclass(frozen=True)
class PodSecurityContext:
    """spec.securityContext: defaults for every container, plus the pod's groups."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    fs_group: int | None = None
    supplemental_groups: tuple[int, ...] = ()


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    resources: Resources = Resources()
    volume_mounts: tuple[VolumeMount, ...] = ()
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    pre_stop: PreStop | None = None
    working_dir: str | None = None
    env_from: tuple[EnvFromSource, ...] = ()
    security_context: SecurityContext | None = None
    restart_policy: Literal["Always"] | None = None  # initContainers only: Always makes a native sidecar
    stdin: bool = False  # its stdin stays open for `kubectl attach -i` (`kubectl run -it`)
    stdin_once: bool = False
    tty: bool = False

    def port_number(self, port: int | str) -> int | None:
        """Resolves a probe's or Service's port (a number, or a containerPort's name)."""
        if isinstance(port, int):
            return port
        if port.isdigit():
            return int(port)
        return next((p.container_port for p in self.ports if p.name == port), None)


@dataclass(frozen=True)
class PodSpec:
    containers: tuple[Container, ...]
    restart_policy: Literal["Always", "OnFailure", "Never"] = "Always"
    termination_grace_period_seconds: float = 30
    share_process_namespace: bool = False
    volumes: tuple[Volume, ...] = ()
    hostname: str | None = None
    subdomain: str | None = None
    image_pull_secrets: tuple[str, ...] = ()  # names of kubernetes.io/dockerconfigjson (or dockercfg) Secrets
    init_containers: tuple[Container, ...] = ()  # run in order before `containers` (sidecars keep running)
    security_context: PodSecurityContext | None = None
    host_network: bool = False
    host_pid: bool = False
    host_ipc: bool = False
    scheduling: Scheduling = Scheduling()  # nodeSelector, nodeName, affinity, tolerations, topology spread


@dataclass(frozen=True)
class PodTemplate:
    metadata: ObjectMeta  # name is "" for templates
    spec: PodSpec


@dataclass(frozen=True)
class LabelSelector:
    match_labels: Mapping[str, str] = field(default_factory=dict)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return bool(self.match_labels) and all(labels.get(k) == v for k, v in self.match_labels.items())


# --- top-level objects --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    metadata: ObjectMeta
    spec: PodSpec
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    kind: str = "Pod"
    api_version: str = "v1"


@dataclass(frozen=True)
class ReplicaSet:
    metadata: ObjectMeta
    replicas: int
    selector: LabelSelector
    template: PodTemplate
    min_ready_seconds: float = 0
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    kind: str = "ReplicaSet"
    api_version: str = "apps/v1"


@dataclass(frozen=True)
class RollingUpdateStrategy:
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"


@dataclass(frozen=True)
class Deployment:
    metadata: ObjectMeta
    replicas: int
    selector: LabelSelector
    template: PodTemplate
    strategy: Literal["RollingUpdate", "Recreate"] = "RollingUpdate"
    rolling_update: RollingUpdateStrategy = RollingUpdateStrategy()
    min_ready_seconds: float = 0
    progress_deadline_seconds: float = 600
    revision_history_limit: int = 10
    paused: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    kind: str = "Deployment"
    api_version: str = "apps/v1"


@dataclass(frozen=True)
class ServicePort:
    port: int
    target_port: int | str  # defaults to `port`
    name: str = ""
    protocol: Literal["TCP", "UDP"] = "TCP"
    app_protocol: str | None = None  # spec.ports[].appProtocol (http, kubernetes.io/h2c, grpc, tcp, ...)
    node_port: int | None = None  # NodePort/LoadBalancer: given, or allocated at apply (meshd/external/)


@dataclass(frozen=True)
class Service:
    metadata: ObjectMeta
    selector: Mapping[str, str]
    ports: tuple[ServicePort, ...]
    headless: bool = False  # clusterIP: None
    cluster_ip: str | None = None  # a requested address; None lets meshd allocate
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    type: Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"] = "ClusterIP"
    allocate_node_ports: bool = True  # spec.allocateLoadBalancerNodePorts (LoadBalancer only)
    traffic_distribution: str | None = None  # spec.trafficDistribution: None or "PreferClose"
    # spec.externalName, lowercase without a trailing dot: DNS answers a CNAME to it (type ExternalName)
    external_name: str | None = None
    kind: str = "Service"
    api_version: str = "v1"

    @property
    def has_address(self) -> bool:
        """Whether it holds a cluster address (neither headless nor ExternalName)."""
        return not self.headless and self.type != "ExternalName"


@dataclass(frozen=True)
class ConfigMap:
    metadata: ObjectMeta
    data: Mapping[str, str] = field(default_factory=dict)
    binary_data: Mapping[str, bytes] = field(default_factory=dict)
    immutable: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    kind: str = "ConfigMap"
    api_version: str = "v1"


@dataclass(frozen=True)
class Secret:
    """`data` holds the decoded bytes (stringData merged in); never in a repr, so never in a log line."""

    metadata: ObjectMeta
    type: str = "Opaque"
    data: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    immutable: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    kind: str = "Secret"
    api_version: str = "v1"


@dataclass(frozen=True)
class StatefulSet:
    """apps/v1 StatefulSet: pods NAME-0..N-1 with stable names, hostnames and claims (meshd.controller.statefulset)."""

    metadata: ObjectMeta
    replicas: int
    selector: LabelSelector
    template: PodTemplate
    service_name: str = ""
    pod_management_policy: Literal["OrderedReady", "Parallel"] = "OrderedReady"
    update_strategy: Literal["RollingUpdate", "OnDelete"] = "RollingUpdate"
    partition: int = 0
    volume_claim_templates: tuple[Mapping[str, Any], ...] = ()  # PersistentVolumeClaim documents
    min_ready_seconds: float = 0
    revision_history_limit: int = 10
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    kind: str = "StatefulSet"
    api_version: str = "apps/v1"


@dataclass(frozen=True)
class DaemonSet:
    """apps/v1 DaemonSet: one pod on every node (meshd.controller.daemonset)."""

    metadata: ObjectMeta
    selector: LabelSelector
    template: PodTemplate
    update_strategy: Literal["RollingUpdate", "OnDelete"] = "RollingUpdate"
    max_unavailable: int | str = 1
    max_surge: int | str = 0
    min_ready_seconds: float = 0
    revision_history_limit: int = 10
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    kind: str = "DaemonSet"
    api_version: str = "apps/v1"



# --- storage (cluster-scoped objects have the namespace "") --------------------------------------------


@dataclass(frozen=True)
class PersistentVolumeClaim:
    metadata: ObjectMeta
    access_modes: tuple[str, ...]  # ReadWriteOnce, ReadOnlyMany, ReadWriteMany, ReadWriteOncePod
    storage_bytes: int  # spec.resources.requests.storage
    storage_class_name: str | None = None  # None: the default StorageClass; "": no class (a PV bound by hand)
    volume_name: str = ""  # the PersistentVolume it asks for or is bound to
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    kind: str = "PersistentVolumeClaim"
    api_version: str = "v1"


@dataclass(frozen=True)
class ClaimRef:
    namespace: str
    name: str
    uid: str = ""


@dataclass(frozen=True)
class PersistentVolume:
    metadata: ObjectMeta
    capacity_bytes: int
    access_modes: tuple[str, ...]
    reclaim_policy: Literal["Retain", "Delete"] = "Retain"
    storage_class_name: str = ""
    claim_ref: ClaimRef | None = None
    host_path: str | None = None  # spec.hostPath.path or spec.local.path: a directory of this machine
    csi_driver: str = ""  # spec.csi.driver: "meshd.io/local" for the volumes meshd provisions
    volume_handle: str = ""  # spec.csi.volumeHandle: the Docker volume's name or the directory's path
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    kind: str = "PersistentVolume"
    api_version: str = "v1"


@dataclass(frozen=True)
class StorageClass:
    metadata: ObjectMeta
    provisioner: str
    reclaim_policy: Literal["Retain", "Delete"] = "Delete"
    volume_binding_mode: Literal["Immediate", "WaitForFirstConsumer"] = "Immediate"
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    kind: str = "StorageClass"
    api_version: str = "storage.k8s.io/v1"


@dataclass(frozen=True)
class Job:
    """batch/v1 Job (meshd.controller.jobs runs it); completions None is a work queue (done when one succeeds)."""

    metadata: ObjectMeta
    template: PodTemplate
    completions: int | None = 1
    parallelism: int = 1
    backoff_limit: int = 6
    active_deadline_seconds: float | None = None
    ttl_seconds_after_finished: int | None = None
    completion_mode: Literal["NonIndexed", "Indexed"] = "NonIndexed"
    suspend: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    kind: str = "Job"
    api_version: str = "batch/v1"


@dataclass(frozen=True)
class CronJob:
    """batch/v1 CronJob (meshd.controller.cronjobs schedules it); `job_template` is spec.jobTemplate as given."""

    metadata: ObjectMeta
    schedule: str
    job_template: Mapping[str, Any]
    time_zone: str | None = None
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = "Allow"
    starting_deadline_seconds: int | None = None
    suspend: bool = False
    successful_jobs_history_limit: int = 3
    failed_jobs_history_limit: int = 1
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    kind: str = "CronJob"
    api_version: str = "batch/v1"


@dataclass(frozen=True)
class Namespace:
    """v1 Namespace: cluster-scoped (its metadata.namespace is "")."""

    metadata: ObjectMeta
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    kind: str = "Namespace"
    api_version: str = "v1"


@dataclass(frozen=True)
class KeptObject:
    """An object of a kind meshd keeps without acting on it (meshd.model.kept: a ServiceAccount, RBAC, a
    NetworkPolicy...): its metadata, and its other top-level fields as given (`content`, compared on apply)."""

    metadata: ObjectMeta
    kind: str
    api_version: str
    content: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


KubeObject = (Pod | ReplicaSet | Deployment | Service | PersistentVolumeClaim | PersistentVolume | StorageClass
              | StatefulSet | DaemonSet | ConfigMap | Secret | Ingress | Job | CronJob | Namespace | KeptObject)

KINDS: tuple[str, ...] = ("Pod", "ReplicaSet", "Deployment", "Service", "PersistentVolumeClaim",
                          "PersistentVolume", "StorageClass", "StatefulSet", "DaemonSet", "ConfigMap", "Secret", "Ingress",
                          "Job", "CronJob", "Namespace", *(k.kind for k in KEPT))
CLUSTER_SCOPED: tuple[str, ...] = ("PersistentVolume", "StorageClass", "Namespace",
                                   *(k.kind for k in KEPT if not k.namespaced))


def object_key(obj: KubeObject) -> tuple[str, str, str]:
    """(kind, namespace, name): an object's identity in the desired state."""
    return (obj.kind, obj.metadata.namespace, obj.metadata.name)
