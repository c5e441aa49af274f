"""What a pod spec takes from ConfigMaps, Secrets and the downward API, read with field paths: env valueFrom
configMapKeyRef/secretKeyRef, envFrom, the volume sources configMap, secret, projected and downwardAPI, subPath,
imagePullSecrets; and the same rendered back in Kubernetes' shape (for GET and -o yaml)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from meshd.manifests import names
from meshd.manifests.config import config_key_problem
from meshd.manifests.errors import FieldPath
from meshd.manifests.quantity import format_cpu, format_memory
from meshd.manifests.reader import MISSING, DocumentReader
from meshd.model.config import (
    DEFAULT_MODE,
    ConfigKind,
    DownwardAPIFile,
    DownwardAPIVolumeSource,
    EnvFromSource,
    KeyRef,
    KeyToPath,
    ObjectVolumeSource,
    ProjectedVolumeSource,
)
from meshd.model.objects import ResourceFieldRef, Volume

CONFIG_VOLUME_SOURCES = ("configMap", "secret", "projected", "downwardAPI")
KEY_REFS: Mapping[str, ConfigKind] = {"configMapKeyRef": "ConfigMap", "secretKeyRef": "Secret"}
_ENV_FROM: Mapping[str, ConfigKind] = {"configMapRef": "ConfigMap", "secretRef": "Secret"}
# the pod fields a downwardAPI volume file can hold (Kubernetes' list; status fields are env-only)
_VOLUME_FIELD = re.compile(r"metadata\.(name|namespace|uid|labels|annotations)"
                           r"|metadata\.(labels|annotations)\['[^']+'\]")
ReadResourceRef = Callable[[DocumentReader, Mapping[str, Any], FieldPath], ResourceFieldRef]


# --- env ------------------------------------------------------------------------------------------------


def read_key_ref(reader: DocumentReader, source: Mapping[str, Any], key: str, path: FieldPath) -> KeyRef:
    """valueFrom.configMapKeyRef or valueFrom.secretKeyRef (`key` says which)."""
    rpath = path + (key,)
    ref = reader.mapping(source[key], rpath)
    reader.check_fields(ref, rpath, known=("name", "key", "optional"))
    name = _object_name(reader, ref, "name", rpath)
    item = reader.string(ref, "key", rpath, required=True, allow_empty=False) or ""
    if problem := config_key_problem(item):
        raise reader.fail(rpath + ("key",), f"invalid key: {problem}")
    return KeyRef(KEY_REFS[key], name, item, reader.boolean(ref, "optional", rpath))


def read_env_from(reader: DocumentReader, obj: Mapping[str, Any], path: FieldPath) -> tuple[EnvFromSource, ...]:
    sources = []
    for i, item in enumerate(reader.sequence(obj, "envFrom", path)):
        epath = path + ("envFrom", i)
        entry = reader.mapping(item, epath)
        reader.check_fields(entry, epath, known=("prefix", *_ENV_FROM))
        refs = [k for k in _ENV_FROM if reader.get(entry, k, epath) is not MISSING]
        if len(refs) != 1:
            raise reader.fail(epath, "exactly one of configMapRef or secretRef is required")
        rpath = epath + (refs[0],)
        ref = reader.mapping(entry[refs[0]], rpath)
        reader.check_fields(ref, rpath, known=("name", "optional"))
        prefix = reader.string(entry, "prefix", epath, default="") or ""
        if "=" in prefix or "\0" in prefix:
            raise reader.fail(epath + ("prefix",), f'invalid environment variable prefix "{prefix}"')
        sources.append(EnvFromSource(_ENV_FROM[refs[0]], _object_name(reader, ref, "name", rpath), prefix,
                                     reader.boolean(ref, "optional", rpath)))
    return tuple(sources)


def _object_name(reader: DocumentReader, obj: Mapping[str, Any], key: str, path: FieldPath) -> str:
    name = reader.string(obj, key, path, required=True, allow_empty=False)
    reader.check_name(name, path + (key,), names.dns1123_subdomain)
    return name or ""


# --- volumes --------------------------------------------------------------------------------------------


def read_config_volume(reader: DocumentReader, volume: Mapping[str, Any], path: FieldPath,
                       read_resource_ref: ReadResourceRef) -> dict[str, Any]:
    """Volume fields for the one config source `volume` has (an empty dict when it has none); more than one
    source is an error, as in Kubernetes."""
    present = [k for k in CONFIG_VOLUME_SOURCES if reader.get(volume, k, path) is not MISSING]
    if not present:
        return {}
    if len(present) > 1 or reader.get(volume, "emptyDir", path) is not MISSING:
        raise reader.fail(path + (present[-1],), "may not specify more than 1 volume type")
    key = present[0]
    vpath = path + (key,)
    source = reader.mapping(volume[key], vpath)
    if key == "configMap":
        return {"config_map": _object_source(reader, source, vpath, "ConfigMap", "name")}
    if key == "secret":
        return {"secret": _object_source(reader, source, vpath, "Secret", "secretName")}
    if key == "downwardAPI":
        return {"downward_api": _downward(reader, source, vpath, read_resource_ref)}
    reader.check_fields(source, vpath, known=("sources", "defaultMode"))
    default_mode = _mode(reader, source, "defaultMode", vpath, DEFAULT_MODE)
    assert default_mode is not None
    sources: list[ObjectVolumeSource | DownwardAPIVolumeSource] = []
    for i, item in enumerate(reader.sequence(source, "sources", vpath)):
        spath = vpath + ("sources", i)
        entry = reader.mapping(item, spath)
        reader.check_fields(entry, spath, known=("configMap", "secret", "downwardAPI"),
                            unsupported=("serviceAccountToken", "clusterTrustBundle", "podCertificate"))
        kinds = [k for k in ("configMap", "secret", "downwardAPI") if reader.get(entry, k, spath) is not MISSING]
        if len(kinds) != 1:
            raise reader.fail(spath, "exactly one of configMap, secret or downwardAPI is required")
        epath = spath + (kinds[0],)
        inner = reader.mapping(entry[kinds[0]], epath)
        if kinds[0] == "downwardAPI":
            sources.append(_downward(reader, inner, epath, read_resource_ref, projected=True,
                                     default_mode=default_mode))
        else:
            kind: ConfigKind = "ConfigMap" if kinds[0] == "configMap" else "Secret"
            sources.append(_object_source(reader, inner, epath, kind, "name", projected=True,
                                          default_mode=default_mode))
    return {"projected": ProjectedVolumeSource(tuple(sources), default_mode)}


def _object_source(reader: DocumentReader, source: Mapping[str, Any], path: FieldPath, kind: ConfigKind,
                   name_key: str, *, projected: bool = False, default_mode: int = DEFAULT_MODE) -> ObjectVolumeSource:
    known = (name_key, "items", "optional") if projected else (name_key, "items", "optional", "defaultMode")
    reader.check_fields(source, path, known=known)
    items = []
    seen: set[str] = set()
    for i, item in enumerate(reader.sequence(source, "items", path)):
        ipath = path + ("items", i)
        entry = reader.mapping(item, ipath)
        reader.check_fields(entry, ipath, known=("key", "path", "mode"))
        key = reader.string(entry, "key", ipath, required=True, allow_empty=False) or ""
        if problem := config_key_problem(key):
            raise reader.fail(ipath + ("key",), f"invalid key: {problem}")
        file_path = _relative_path(reader, entry, ipath, seen)
        items.append(KeyToPath(key, file_path, _mode(reader, entry, "mode", ipath, None)))
    mode = default_mode if projected else _mode(reader, source, "defaultMode", path, DEFAULT_MODE)
    assert mode is not None
    return ObjectVolumeSource(kind, _object_name(reader, source, name_key, path), tuple(items), mode,
                              reader.boolean(source, "optional", path))


def _downward(reader: DocumentReader, source: Mapping[str, Any], path: FieldPath, read_resource_ref: ReadResourceRef,
              *, projected: bool = False, default_mode: int = DEFAULT_MODE) -> DownwardAPIVolumeSource:
    reader.check_fields(source, path, known=("items",) if projected else ("items", "defaultMode"))
    files = []
    seen: set[str] = set()
    for i, item in enumerate(reader.sequence(source, "items", path)):
        ipath = path + ("items", i)
        entry = reader.mapping(item, ipath)
        reader.check_fields(entry, ipath, known=("path", "fieldRef", "resourceFieldRef", "mode"))
        file_path = _relative_path(reader, entry, ipath, seen)
        mode = _mode(reader, entry, "mode", ipath, None)
        refs = [k for k in ("fieldRef", "resourceFieldRef") if reader.get(entry, k, ipath) is not MISSING]
        if len(refs) != 1:
            raise reader.fail(ipath, "exactly one of fieldRef or resourceFieldRef is required")
        rpath = ipath + (refs[0],)
        ref = reader.mapping(entry[refs[0]], rpath)
        if refs[0] == "fieldRef":
            reader.check_fields(ref, rpath, known=("fieldPath", "apiVersion"))
            field = reader.string(ref, "fieldPath", rpath, required=True, allow_empty=False) or ""
            if not _VOLUME_FIELD.fullmatch(field):
                raise reader.fail(rpath + ("fieldPath",), f'unsupported value "{field}" (supported: metadata.name, '
                                  "metadata.namespace, metadata.uid, metadata.labels, metadata.annotations, "
                                  "metadata.labels['KEY'], metadata.annotations['KEY'])")
            files.append(DownwardAPIFile(file_path, field_path=field, mode=mode))
            continue
        resource = read_resource_ref(reader, ref, rpath)
        if not resource.container_name:
            raise reader.fail(rpath + ("containerName",), "required in a downwardAPI volume")
        files.append(DownwardAPIFile(file_path, resource=resource.resource, container_name=resource.container_name,
                                     divisor=resource.divisor, mode=mode))
    mode = default_mode if projected else _mode(reader, source, "defaultMode", path, DEFAULT_MODE)
    assert mode is not None
    return DownwardAPIVolumeSource(tuple(files), mode)


def _relative_path(reader: DocumentReader, entry: Mapping[str, Any], path: FieldPath, seen: set[str]) -> str:
    """items[].path: relative, no '..' element, not starting with '..' (Kubernetes' validateLocalDescendingPath)."""
    value = reader.string(entry, "path", path, required=True, allow_empty=False) or ""
    if problem := relative_path_problem(value):
        raise reader.fail(path + ("path",), problem)
    if value in seen:
        raise reader.fail(path + ("path",), f'duplicate path "{value}"')
    seen.add(value)
    return value


def relative_path_problem(value: str) -> str | None:
    if value.startswith("/"):
        return "must be a relative path"
    if ".." in value.split("/"):
        return "must not contain '..'"
    if value.startswith(".."):
        return "must not start with '..'"
    if "\0" in value:
        return "must not contain a NUL character"
    return None


def _mode(reader: DocumentReader, obj: Mapping[str, Any], key: str, path: FieldPath,
          default: int | None) -> int | None:
    """A file mode: 0 to 0777 (YAML 0644 and JSON 420 are the same number)."""
    return reader.integer(obj, key, path, default=default, minimum=0, maximum=0o777)


def check_sub_path(reader: DocumentReader, mount: Mapping[str, Any], path: FieldPath) -> str:
    value = reader.string(mount, "subPath", path, default="") or ""
    if value and (problem := relative_path_problem(value)):
        raise reader.fail(path + ("subPath",), problem)
    return value


def check_sub_paths(reader: DocumentReader, volumes: tuple[Volume, ...], containers: tuple[Any, ...],
                    path: FieldPath, *, list_key: str = "containers") -> None:
    """subPath is served for the volumes whose files meshd writes (configMap, secret, projected, downwardAPI)."""
    config = {v.name for v in volumes if v.is_config}
    for i, container in enumerate(containers):
        for j, mount in enumerate(container.volume_mounts):
            if mount.sub_path and mount.name not in config:
                raise reader.fail(path + (list_key, i, "volumeMounts", j, "subPath"),
                                  "not supported yet on this volume type (meshd serves subPath on configMap, "
                                  "secret, projected and downwardAPI volumes)")


def read_pull_secrets(reader: DocumentReader, spec: Mapping[str, Any], path: FieldPath) -> tuple[str, ...]:
    out = []
    for i, item in enumerate(reader.sequence(spec, "imagePullSecrets", path)):
        ipath = path + ("imagePullSecrets", i)
        entry = reader.mapping(item, ipath)
        reader.check_fields(entry, ipath, known=("name",))
        out.append(_object_name(reader, entry, "name", ipath))
    return tuple(out)


# --- rendering ------------------------------------------------------------------------------------------


def render_config_volume(volume: Volume) -> dict[str, Any] | None:
    """The volume's config source as Kubernetes shows it ({"configMap": {...}}), or None for other volumes."""
    if volume.config_map is not None:
        return {"configMap": _render_object(volume.config_map, "name")}
    if volume.secret is not None:
        return {"secret": _render_object(volume.secret, "secretName")}
    if volume.downward_api is not None:
        return {"downwardAPI": _render_downward(volume.downward_api)}
    if volume.projected is not None:
        sources: list[dict[str, Any]] = []
        for source in volume.projected.sources:
            if isinstance(source, DownwardAPIVolumeSource):
                sources.append({"downwardAPI": {"items": _render_downward(source)["items"]}})
            else:
                rendered = _render_object(source, "name")
                rendered.pop("defaultMode")
                sources.append({"configMap" if source.kind == "ConfigMap" else "secret": rendered})
        return {"projected": {"sources": sources, "defaultMode": volume.projected.default_mode}}
    return None


def _render_object(source: ObjectVolumeSource, name_key: str) -> dict[str, Any]:
    out: dict[str, Any] = {name_key: source.name, "defaultMode": source.default_mode}
    if source.items:
        out["items"] = [{"key": i.key, "path": i.path, **({"mode": i.mode} if i.mode is not None else {})}
                        for i in source.items]
    if source.optional:
        out["optional"] = True
    return out


def _render_downward(source: DownwardAPIVolumeSource) -> dict[str, Any]:
    items = []
    for f in source.items:
        item: dict[str, Any] = {"path": f.path}
        if f.field_path:
            item["fieldRef"] = {"apiVersion": "v1", "fieldPath": f.field_path}
        else:
            divisor = format_cpu(f.divisor) if (f.resource or "").endswith("cpu") else format_memory(f.divisor)
            item["resourceFieldRef"] = {"containerName": f.container_name, "resource": f.resource,
                                        "divisor": divisor}
        if f.mode is not None:
            item["mode"] = f.mode
        items.append(item)
    return {"items": items, "defaultMode": source.default_mode}


def render_key_ref(ref: KeyRef) -> dict[str, Any]:
    key = "configMapKeyRef" if ref.kind == "ConfigMap" else "secretKeyRef"
    return {key: {"name": ref.name, "key": ref.key, **({"optional": True} if ref.optional else {})}}


def render_env_from(sources: tuple[EnvFromSource, ...]) -> list[dict[str, Any]]:
    out = []
    for s in sources:
        ref = {"name": s.name, **({"optional": True} if s.optional else {})}
        out.append({**({"prefix": s.prefix} if s.prefix else {}),
                    "configMapRef" if s.kind == "ConfigMap" else "secretRef": ref})
    return out


__all__ = ["CONFIG_VOLUME_SOURCES", "KEY_REFS", "check_sub_path", "read_config_volume", "read_env_from",
           "read_key_ref", "read_pull_secrets", "render_config_volume", "render_env_from", "render_key_ref"]
