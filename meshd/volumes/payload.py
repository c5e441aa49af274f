"""The files of configMap, secret, projected and downwardAPI volumes, and a container's env from ConfigMaps and
Secrets (pure). A missing object or key that is not optional is a ConfigError naming it, never its values."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from meshd.model.config import ConfigKind, DownwardAPIVolumeSource, ObjectVolumeSource
from meshd.model.expansion import PodFacts, field_value, resource_value
from meshd.model.objects import ConfigMap, Container, EnvVar, ResourceFieldRef, Secret, Volume

Lookup = Callable[[ConfigKind, str, str], ConfigMap | Secret | None]  # (kind, namespace, name)


class ConfigError(Exception):
    """Why a container cannot start yet (Kubernetes' CreateContainerConfigError); retried until it can."""

    reason = "CreateContainerConfigError"


@dataclass(frozen=True)
class File:
    data: bytes
    mode: int


Payload = dict[str, File]  # relative path -> file


def object_items(obj: ConfigMap | Secret) -> dict[str, bytes]:
    """Every key of the object with its bytes (a ConfigMap's data as UTF-8, its binaryData as is)."""
    if isinstance(obj, Secret):
        return dict(obj.data)
    return {**{k: v.encode() for k, v in obj.data.items()}, **obj.binary_data}


def _missing(kind: ConfigKind, name: str) -> ConfigError:
    return ConfigError(f'{kind.lower()} "{name}" not found')


def _missing_key(kind: ConfigKind, namespace: str, name: str, key: str) -> ConfigError:
    return ConfigError(f"couldn't find key {key} in {kind} {namespace}/{name}")


def object_files(source: ObjectVolumeSource, namespace: str, lookup: Lookup) -> Payload:
    obj = lookup(source.kind, namespace, source.name)
    if obj is None:
        if source.optional:
            return {}
        raise _missing(source.kind, source.name)
    items = object_items(obj)
    if not source.items:
        return {key: File(value, source.default_mode) for key, value in items.items()}
    out = {}
    for item in source.items:
        if item.key not in items:
            if source.optional:
                continue
            raise _missing_key(source.kind, namespace, source.name, item.key)
        out[item.path] = File(items[item.key], source.default_mode if item.mode is None else item.mode)
    return out


def _format_map(values: Mapping[str, str]) -> str:
    """metadata.labels / annotations as the kubelet writes them: key="value" lines, sorted, Go-quoted."""
    def quote(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return "\n".join(f"{k}={quote(v)}" for k, v in sorted(values.items()))


def downward_files(source: DownwardAPIVolumeSource, facts: PodFacts, containers: Sequence[Container]) -> Payload:
    out = {}
    by_name = {c.name: c for c in containers}
    for item in source.items:
        mode = source.default_mode if item.mode is None else item.mode
        if item.field_path == "metadata.labels":
            text = _format_map(facts.labels)
        elif item.field_path == "metadata.annotations":
            text = _format_map(facts.annotations)
        elif item.field_path:
            text = field_value(item.field_path, facts)
        else:
            container = by_name.get(item.container_name)
            if container is None:
                raise ConfigError(f'downwardAPI {item.path}: no container "{item.container_name}" in this pod')
            ref = ResourceFieldRef(item.resource, item.container_name, item.divisor)  # type: ignore[arg-type]
            text = resource_value(ref, container, facts)
        out[item.path] = File(text.encode(), mode)
    return out


def volume_files(volume: Volume, facts: PodFacts, containers: Sequence[Container], lookup: Lookup) -> Payload:
    """The files of one config volume; raises ConfigError."""
    if volume.config_map is not None:
        return object_files(volume.config_map, facts.namespace, lookup)
    if volume.secret is not None:
        return object_files(volume.secret, facts.namespace, lookup)
    if volume.downward_api is not None:
        return downward_files(volume.downward_api, facts, containers)
    out: Payload = {}
    for source in volume.projected.sources if volume.projected is not None else ():
        if isinstance(source, DownwardAPIVolumeSource):
            out.update(downward_files(source, facts, containers))
        else:
            out.update(object_files(source, facts.namespace, lookup))
    return out


def is_secret_volume(volume: Volume) -> bool:
    sources = volume.projected.sources if volume.projected is not None else ()
    return volume.secret is not None or any(isinstance(s, ObjectVolumeSource) and s.kind == "Secret"
                                            for s in sources)


def env_name_ok(name: str) -> bool:
    """What Kubernetes accepts as a variable name from envFrom (printable ASCII, no '=')."""
    return bool(name) and "=" not in name and all(" " <= c <= "~" for c in name)


def resolve_config_env(container: Container, namespace: str, lookup: Lookup) -> tuple[Container, list[str]]:
    """The container with envFrom expanded (before env, which wins) and every configMapKeyRef/secretKeyRef given
    its value; also the envFrom keys skipped as invalid variable names. Raises ConfigError."""
    if not container.env_from and not any(v.key_ref for v in container.env):
        return container, []
    env: list[EnvVar] = []
    skipped: list[str] = []
    for source in container.env_from:
        obj = lookup(source.kind, namespace, source.name)
        if obj is None:
            if source.optional:
                continue
            raise _missing(source.kind, source.name)
        for key, value in sorted(object_items(obj).items()):
            name = source.prefix + key
            if env_name_ok(name):
                env.append(EnvVar(name, value.decode(errors="replace")))
            else:
                skipped.append(name)
    for var in container.env:
        ref = var.key_ref
        if ref is None:
            env.append(var)
            continue
        obj = lookup(ref.kind, namespace, ref.name)
        if obj is None:
            if ref.optional:
                continue
            raise _missing(ref.kind, ref.name)
        items = object_items(obj)
        if ref.key not in items:
            if ref.optional:
                continue
            raise _missing_key(ref.kind, namespace, ref.name, ref.key)
        env.append(EnvVar(var.name, items[ref.key].decode(errors="replace")))
    return replace(container, env=tuple(env)), skipped
