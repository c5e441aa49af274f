"""The resource kinds meshd serves: names and aliases as kubectl spells them, their API paths, and what the
API's discovery documents say of them (verbs, short names, subresources): one table for the CLI and the API."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from meshd.model.kept import KEPT


@dataclass(frozen=True)
class Kind:
    kind: str  # "Deployment"
    plural: str  # "deployments"
    group: str  # "" (core) or "apps"
    version: str
    aliases: tuple[str, ...]
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("delete", "get", "list", "watch")
    subresources: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (name, kind, verbs): ("scale", "Scale", ...)
    categories: tuple[str, ...] = ("all",)
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def display(self) -> str:
        """How kubectl names the kind in output: "pod", "deployment.apps"."""
        return f"{self.kind.lower()}.{self.group}" if self.group else self.kind.lower()

    @property
    def resource(self) -> str:
        """kubectl's resource name in errors: "pods", "deployments.apps"."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def _prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def collection_path(self, namespace: str | None) -> str:
        """The list path: one namespace, or every namespace when namespace is None."""
        if namespace is None or not self.namespaced:
            return f"{self._prefix()}/{self.plural}"
        return f"{self._prefix()}/namespaces/{quote(namespace, safe='')}/{self.plural}"

    def object_path(self, namespace: str, name: str) -> str:
        return f"{self.collection_path(namespace)}/{quote(name, safe='')}"


_READ = ("get", "list", "watch")
_WRITE = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")  # meshd.api.writes's
_EVENT_WRITE = ("create", "delete", "get", "list", "patch", "update", "watch")  # meshd.api.events's
_STATUS = ("status", "", ("get",))  # "" = the kind itself
_SCALE = ("scale", "Scale", ("get", "patch", "update"))
_EVICTION = ("eviction", "Eviction", ("create",))  # policy/v1 (meshd.api.nodeops)
SUBRESOURCE_GROUPS = {"Scale": ("autoscaling", "v1"), "Eviction": ("policy", "v1")}  # kinds of other groups
POD = Kind("Pod", "pods", "", "v1", ("po", "pod", "pods"), short_names=("po",), verbs=_WRITE,
           subresources=(("log", "Pod", ("get",)), _STATUS, _EVICTION))
SERVICE = Kind("Service", "services", "", "v1", ("svc", "service", "services"), short_names=("svc",), verbs=_WRITE,
               subresources=(_STATUS,))
ENDPOINTS = Kind("Endpoints", "endpoints", "", "v1", ("ep", "endpoint", "endpoints"), short_names=("ep",),
                 verbs=_READ, categories=())
DEPLOYMENT = Kind("Deployment", "deployments", "apps", "v1", ("deploy", "deployment", "deployments"),
                  short_names=("deploy",), verbs=_WRITE, subresources=(_SCALE, _STATUS))
REPLICASET = Kind("ReplicaSet", "replicasets", "apps", "v1", ("rs", "replicaset", "replicasets"),
                  short_names=("rs",), verbs=_WRITE, subresources=(_SCALE, _STATUS))
STATEFULSET = Kind("StatefulSet", "statefulsets", "apps", "v1", ("sts", "statefulset", "statefulsets"),
                   short_names=("sts",), verbs=_WRITE, subresources=(_SCALE, _STATUS))
DAEMONSET = Kind("DaemonSet", "daemonsets", "apps", "v1", ("ds", "daemonset", "daemonsets"),
                 short_names=("ds",), verbs=_WRITE, subresources=(_STATUS,))
EVENT = Kind("Event", "events", "", "v1", ("ev", "event", "events"), short_names=("ev",),
             verbs=_EVENT_WRITE, categories=())  # written through meshd.api.events
CONFIGMAP = Kind("ConfigMap", "configmaps", "", "v1", ("cm", "configmap", "configmaps"), short_names=("cm",),
                 verbs=_WRITE, categories=())
SECRET = Kind("Secret", "secrets", "", "v1", ("secret", "secrets"), verbs=_WRITE, categories=())

JOB = Kind("Job", "jobs", "batch", "v1", ("job", "jobs"), verbs=_WRITE, subresources=(_STATUS,))
CRONJOB = Kind("CronJob", "cronjobs", "batch", "v1", ("cj", "cronjob", "cronjobs"), short_names=("cj",),
               verbs=_WRITE, subresources=(_STATUS,))

# cluster-scoped, served by the API (discovery, get, list, watch; namespaces are written too) but not `meshd`
# CLI kinds
NAMESPACE = Kind("Namespace", "namespaces", "", "v1", ("ns", "namespace", "namespaces"), short_names=("ns",),
                 verbs=_WRITE, categories=(), namespaced=False, subresources=(_STATUS,))
NODE = Kind("Node", "nodes", "", "v1", ("no", "node", "nodes"), short_names=("no",),
            verbs=("delete", *_READ, "patch"), categories=(),  # written in a cluster: meshd.api.nodeops
            namespaced=False)
# the events.k8s.io view of the same events as EVENT (meshd.api.events maps them)
EVENTS_V1 = Kind("Event", "events", "events.k8s.io", "v1", ("event", "events"), short_names=("ev",),
                 verbs=_EVENT_WRITE, categories=())
# each Service's endpoints as discovery.k8s.io serves them (meshd.api.endpointslices): read-only views
ENDPOINTSLICE = Kind("EndpointSlice", "endpointslices", "discovery.k8s.io", "v1", ("endpointslice", "endpointslices"),
                     verbs=_READ, categories=())
# a node's heartbeat and the controllers' leader, with a shared store (meshd.cluster): read-only here
LEASE = Kind("Lease", "leases", "coordination.k8s.io", "v1", ("lease", "leases"), verbs=_READ, categories=())

INGRESS = Kind("Ingress", "ingresses", "networking.k8s.io", "v1", ("ing", "ingress", "ingresses"),
                short_names=("ing",), verbs=_WRITE, subresources=(_STATUS,), categories=())
INGRESSCLASS = Kind("IngressClass", "ingressclasses", "networking.k8s.io", "v1", ("ingressclass", "ingressclasses"),
                    verbs=_READ, categories=(), namespaced=False)

PVC = Kind("PersistentVolumeClaim", "persistentvolumeclaims", "", "v1",
           ("pvc", "persistentvolumeclaim", "persistentvolumeclaims"), short_names=("pvc",), verbs=_WRITE,
           subresources=(_STATUS,), categories=())
PV = Kind("PersistentVolume", "persistentvolumes", "", "v1", ("pv", "persistentvolume", "persistentvolumes"),
          short_names=("pv",), verbs=_WRITE, subresources=(_STATUS,), categories=(), namespaced=False)
STORAGECLASS = Kind("StorageClass", "storageclasses", "storage.k8s.io", "v1",
                    ("sc", "storageclass", "storageclasses"), short_names=("sc",), verbs=_WRITE, categories=(),
                    namespaced=False)
STORAGE_KINDS: tuple[Kind, ...] = (PVC, PV, STORAGECLASS)

# the kinds meshd keeps without acting on them (meshd.model.kept)
KEPT_KINDS: tuple[Kind, ...] = tuple(
    Kind(k.kind, k.plural, k.api_version.rpartition("/")[0], k.api_version.rpartition("/")[2],
         (k.kind.lower(), k.plural, *k.short_names), short_names=k.short_names, verbs=_WRITE, categories=(),
         namespaced=k.namespaced) for k in KEPT)

KINDS: tuple[Kind, ...] = (POD, SERVICE, ENDPOINTS, DEPLOYMENT, REPLICASET, EVENT, STATEFULSET, DAEMONSET,
                          *STORAGE_KINDS, CONFIGMAP, SECRET, INGRESS, JOB, CRONJOB, *KEPT_KINDS)
# what `get all` shows, in kubectl's order
ALL: tuple[Kind, ...] = (POD, SERVICE, DAEMONSET, DEPLOYMENT, REPLICASET, STATEFULSET, JOB, CRONJOB)
_BY_KIND = {k.kind: k for k in KINDS}


class UnknownKind(ValueError):
    """A resource type the CLI does not know."""


def resolve_kind(text: str) -> Kind:
    """The Kind for what a user typed: "po", "pods", "Deployment", "deployments.apps", "rs"."""
    name = text.strip().lower()
    groups = sorted({k.group for k in KINDS if k.group}, key=len, reverse=True)
    for suffix in (*(f".{g}/{v}" for g in groups for v in ("v1", "v2")), *(f".{g}" for g in groups),
                   ".networking", ".rbac", ".v1"):
        name = name.removesuffix(suffix)
    for kind in KINDS:
        if name in kind.aliases or name == kind.kind.lower():
            return kind
    raise UnknownKind(f'the server doesn\'t have a resource type "{text}"')


def kind_of(obj: dict) -> Kind | None:
    """The Kind of an API object by its `kind` field (None when meshd does not know it)."""
    return _BY_KIND.get(str(obj.get("kind", "")))


def kind_by_name(kind: str) -> Kind | None:
    return _BY_KIND.get(kind)


def split_type_name(text: str) -> tuple[Kind, str]:
    """ "deployment/web" -> (DEPLOYMENT, "web"); raises UnknownKind or ValueError."""
    kind_text, sep, name = text.partition("/")
    if not sep or not name:
        raise ValueError(f"expected TYPE/NAME (e.g. deployment/web), got {text!r}")
    return resolve_kind(kind_text), name
