"""load_documents: multi-document YAML text -> model objects and warnings, or one ManifestError."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from meshd.manifests import batch, names
from meshd.manifests.config import CONFIG_MAP_FIELDS, SECRET_FIELDS, read_config_map, read_secret
from meshd.manifests.errors import FieldPath, ManifestError
from meshd.manifests.ingress import read_ingress
from meshd.manifests.meta import read_object_meta
from meshd.manifests.pods import read_pod_spec
from meshd.manifests.reader import INT32_MAX, MISSING, DocumentReader, describe_value
from meshd.manifests.services import read_service
from meshd.manifests.statefulsets import read_daemonset, read_statefulset
from meshd.manifests.storage import (
    STORAGE_CLASS_FIELDS,
    STORAGE_CLASS_IGNORED,
    read_persistent_volume,
    read_persistent_volume_claim,
    read_storage_class,
)
from meshd.manifests.workloads import read_deployment, read_replica_set
from meshd.manifests.yamldocs import RawDocument, parse_documents
from meshd.model.kept import BY_KIND, KEPT
from meshd.model.objects import CLUSTER_SCOPED, KeptObject, KubeObject, ObjectMeta, Pod, object_key

API_VERSIONS: Mapping[str, str] = {
    "Pod": "v1",
    "Service": "v1",
    "ReplicaSet": "apps/v1",
    "Deployment": "apps/v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "Ingress": "networking.k8s.io/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "PersistentVolumeClaim": "v1",
    "PersistentVolume": "v1",
    "StorageClass": "storage.k8s.io/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
    "Namespace": "v1",
    **{k.kind: k.api_version for k in KEPT},
}
_NAME_RULES: Mapping[str, Callable[[str], str | None]] = {
    "Pod": names.dns1123_subdomain,
    "ReplicaSet": names.dns1123_subdomain,
    "Deployment": names.dns1123_subdomain,
    "Service": names.dns1035_label,
    "ConfigMap": names.dns1123_subdomain,
    "Secret": names.dns1123_subdomain,
    "Ingress": names.dns1123_subdomain,
    "StatefulSet": names.dns1123_label,  # its pods' hostnames are NAME-ORDINAL
    "DaemonSet": names.dns1123_subdomain,
    "PersistentVolumeClaim": names.dns1123_subdomain,
    "PersistentVolume": names.dns1123_subdomain,
    "StorageClass": names.dns1123_subdomain,
    "Job": names.dns1123_label,  # its name is its pods' job-name label value: 63 characters at most
    "CronJob": batch.cronjob_name,
    "Namespace": names.dns1123_label,
    **{k.kind: names.path_segment_name if "rbac" in k.api_version else names.dns1123_subdomain for k in KEPT},
}
_STORAGE_READERS: Mapping[str, Callable[[DocumentReader, dict[str, Any], ObjectMeta], KubeObject]] = {
    "PersistentVolumeClaim": read_persistent_volume_claim,
    "PersistentVolume": read_persistent_volume,
    "StorageClass": read_storage_class,
}
_TOP_FIELDS: Mapping[str, tuple[str, ...]] = {"ConfigMap": CONFIG_MAP_FIELDS, "Secret": SECRET_FIELDS,
                                              **{k.kind: ("apiVersion", "kind", "metadata", *k.fields) for k in KEPT}}
_STATUS = {"status": "ignored (status is set by meshd)"}


@dataclass(frozen=True)
class LoadResult:
    """The objects of a manifest stream in document order, and warnings about fields meshd ignores."""

    objects: tuple[KubeObject, ...]
    warnings: tuple[str, ...]


def load_documents(text: str, *, source: str = "<stdin>") -> LoadResult:
    """Parses and validates every document (a `v1 List`'s items too); raises ManifestError on the first problem."""
    return _load_all(parse_documents(text, source=source), source=source)


def load_objects(documents: Iterable[Any], *, source: str = "<data>") -> LoadResult:
    """As load_documents, for documents already parsed (JSON bodies, stored state): no YAML step, so no
    line numbers; each document is copied, so the caller's dicts never become an object's `raw`."""
    parsed = []
    for index, data in enumerate(documents, start=1):
        try:
            data = json.loads(json.dumps(data, allow_nan=False))
        except (TypeError, ValueError, RecursionError) as exc:
            raise ManifestError(f"not a JSON-like document: {exc}", source=source, document=index) from None
        parsed.append(RawDocument(index, data, 0, {}))
    return _load_all(parsed, source=source)


def _load_all(documents: Iterable[RawDocument], *, source: str) -> LoadResult:
    warnings: list[str] = []
    objects: list[KubeObject] = []
    for document in documents:
        if document.data is None:
            continue
        objects.extend(_load_document(document, source=source, warnings=warnings))
    seen: dict[tuple[str, str, str], int] = {}
    for index, obj in enumerate(objects):
        key = object_key(obj)
        if key in seen:
            warnings.append(
                f"{source}: {key[0]} {key[1]}/{key[2]} appears more than once: the last definition wins"
            )
        seen[key] = index
    return LoadResult(objects=tuple(objects), warnings=tuple(warnings))


def _load_document(document: RawDocument, *, source: str, warnings: list[str]) -> list[KubeObject]:
    reader = DocumentReader(
        source=source, document=document.index, lines=document.lines, texts=document.texts, warnings=warnings
    )
    doc = reader.mapping(document.data, ())
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and kind not in API_VERSIONS:
        return _load_list(reader, doc, document, warnings=warnings)
    return [_load_object(reader, doc)]


def _load_list(
    reader: DocumentReader, doc: dict[str, Any], document: RawDocument, *, warnings: list[str]
) -> list[KubeObject]:
    """`kind: List` (or PodList, DeploymentList, ...): each item is an object of its own."""
    reader.kind = doc["kind"]
    reader.check_fields(doc, (), known=("apiVersion", "kind", "items", "metadata"))
    reader.string(doc, "apiVersion", (), required=True)
    reader.sequence(doc, "items", ())
    objects: list[KubeObject] = []
    for i, item in enumerate(doc.get("items") or []):
        item_reader = DocumentReader(
            source=reader.source,
            document=document.index,
            item=i,
            lines=document.lines,
            texts=document.texts,
            line_base=("items", i),
            warnings=warnings,
        )
        item_doc = item_reader.mapping(item, ())
        if isinstance(item_doc.get("kind"), str) and item_doc["kind"].endswith("List"):
            raise item_reader.fail(("kind",), "a List may not contain another List")
        objects.append(_load_object(item_reader, item_doc, implied_kind=_list_item_kind(doc["kind"])))
    return objects


def _list_item_kind(list_kind: str) -> str | None:
    kind = list_kind.removesuffix("List")
    return kind if kind in API_VERSIONS else None


def _load_object(
    reader: DocumentReader, doc: dict[str, Any], *, implied_kind: str | None = None
) -> KubeObject:
    kind = _read_kind(reader, doc, implied_kind)
    reader.kind = kind
    metadata_value = doc.get("metadata")
    if isinstance(metadata_value, dict) and isinstance(metadata_value.get("name"), str):
        reader.name = metadata_value["name"]  # for messages before metadata is read (it is validated there)
    api_version = API_VERSIONS[kind]
    given_version = doc.get("apiVersion")
    if given_version is None and implied_kind is None:
        raise reader.fail(("apiVersion",), "required field is missing")
    if given_version is not None:
        given_version = reader.as_string(given_version, ("apiVersion",))
        if given_version != api_version:
            raise reader.fail(
                ("apiVersion",),
                f'"{given_version}" is not supported for {kind}: use apiVersion: {api_version}',
            )
    if kind == "StorageClass":
        reader.check_fields(doc, (), known=STORAGE_CLASS_FIELDS, ignored=STORAGE_CLASS_IGNORED)
    else:
        known = _TOP_FIELDS.get(kind, ("apiVersion", "kind", "metadata", "spec"))
        reader.check_fields(doc, (), known=known, ignored=_STATUS)
    metadata = read_object_meta(reader, doc, name_check=_NAME_RULES[kind])
    if kind in CLUSTER_SCOPED:  # as the API server does, a namespace given to a cluster-scoped object is dropped
        metadata = dataclasses.replace(metadata, namespace="")
    if kind in _STORAGE_READERS:
        return _STORAGE_READERS[kind](reader, doc, metadata)
    if kind in BY_KIND:
        return _read_kept(reader, doc, metadata)
    if kind == "ConfigMap":
        return read_config_map(reader, doc, metadata)
    if kind == "Secret":
        return read_secret(reader, doc, metadata)
    if kind == "Pod":
        return _read_pod(reader, doc, metadata)
    if kind == "ReplicaSet":
        return read_replica_set(reader, doc, metadata)
    if kind == "Deployment":
        return read_deployment(reader, doc, metadata)
    if kind == "Ingress":
        return read_ingress(reader, doc, metadata)
    if kind == "StatefulSet":
        return read_statefulset(reader, doc, metadata)
    if kind == "DaemonSet":
        return read_daemonset(reader, doc, metadata)
    if kind in batch.READERS:
        return batch.READERS[kind](reader, doc, metadata)
    return read_service(reader, doc, metadata)


def _read_kind(reader: DocumentReader, doc: Mapping[str, Any], implied_kind: str | None) -> str:
    value = doc.get("kind")
    if value is None:
        if implied_kind is not None:
            return implied_kind
        raise reader.fail(("kind",), "required field is missing")
    if not isinstance(value, str):
        raise reader.fail(("kind",), f"expected a string, got {describe_value(value)}")
    if value not in API_VERSIONS:
        supported = ", ".join(f"{v} {k}" for k, v in API_VERSIONS.items())
        raise reader.fail(("kind",), f'kind "{value}" is not supported (supported: {supported}, v1 List)')
    return value


def _read_kept(reader: DocumentReader, doc: Mapping[str, Any], metadata: ObjectMeta) -> KeptObject:
    """An object meshd keeps without acting on it (meshd.model.kept): its fields as given, and a warning that
    says what meshd does not do with it."""
    kept = BY_KIND[str(doc["kind"])]
    for name, shape in kept.fields.items():  # the shape of each field, as the API server's decoding checks it
        required, shape = shape.endswith("!"), shape.rstrip("!")
        if shape == "list":
            for i, item in enumerate(reader.sequence(doc, name, (), required=required)):
                reader.mapping(item, (name, i))
        elif shape == "object" and (value := reader.get(doc, name, (), required=required)) is not MISSING:
            reader.mapping(value, (name,))
        elif shape == "bool":
            reader.boolean(doc, name, ())
        elif shape == "int":
            reader.integer(doc, name, (), required=required, minimum=-INT32_MAX - 1)
        elif shape == "string":
            reader.string(doc, name, ())
    reader.warn((), f"kept, not acted on: {kept.note}")
    content = {k: v for k, v in doc.items() if k in kept.fields and v is not None}
    return KeptObject(metadata=metadata, kind=kept.kind, api_version=kept.api_version, content=content, raw=doc)


def _read_pod(reader: DocumentReader, doc: Mapping[str, Any], metadata: ObjectMeta) -> Pod:
    path: FieldPath = ("spec",)
    spec = read_pod_spec(reader, reader.get(doc, "spec", (), required=True), path)
    return Pod(metadata=metadata, spec=spec, raw=doc)


__all__ = ["LoadResult", "ManifestError", "load_documents", "load_objects"]
