"""What pods take from ConfigMaps, Secrets and the downward API: env references (valueFrom configMapKeyRef and
secretKeyRef, envFrom) and the volume sources configMap, secret, projected and downwardAPI, as frozen values.
Field names follow Kubernetes in snake_case; defaults are Kubernetes' own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ConfigKind = Literal["ConfigMap", "Secret"]
DEFAULT_MODE = 0o644  # a configMap, secret, projected and downwardAPI volume's files, as in Kubernetes


@dataclass(frozen=True)
class KeyRef:
    """env valueFrom.configMapKeyRef / secretKeyRef: one key of one object in the pod's namespace."""

    kind: ConfigKind
    name: str
    key: str
    optional: bool = False


@dataclass(frozen=True)
class EnvFromSource:
    """envFrom[]: every key of a ConfigMap or Secret as a variable, with an optional prefix."""

    kind: ConfigKind
    name: str
    prefix: str = ""
    optional: bool = False


@dataclass(frozen=True)
class KeyToPath:
    """items[]: a key written to a relative path, with its own mode (None = the volume's defaultMode)."""

    key: str
    path: str
    mode: int | None = None


@dataclass(frozen=True)
class ObjectVolumeSource:
    """A configMap or secret volume (or a projected volume's configMap/secret source): every key as a file
    named after it, or only `items`; a missing object or key is an error unless `optional`."""

    kind: ConfigKind
    name: str
    items: tuple[KeyToPath, ...] = ()
    default_mode: int = DEFAULT_MODE
    optional: bool = False


@dataclass(frozen=True)
class DownwardAPIFile:
    """downwardAPI items[]: a pod field (metadata.name, labels, ...) or a container's resource, as a file."""

    path: str
    field_path: str | None = None  # metadata.name, metadata.namespace, metadata.uid, metadata.labels, ...
    resource: str | None = None  # limits.cpu, limits.memory, requests.cpu, requests.memory
    container_name: str = ""
    divisor: int = 1
    mode: int | None = None


@dataclass(frozen=True)
class DownwardAPIVolumeSource:
    items: tuple[DownwardAPIFile, ...] = ()
    default_mode: int = DEFAULT_MODE


@dataclass(frozen=True)
class ProjectedVolumeSource:
    """A projected volume: the files of several sources in one directory."""

    sources: tuple[ObjectVolumeSource | DownwardAPIVolumeSource, ...] = ()
    default_mode: int = DEFAULT_MODE
