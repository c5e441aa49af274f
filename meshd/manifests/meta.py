"""metadata: name, namespace, labels and annotations, with Kubernetes' name rules."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from meshd.manifests import names
from meshd.manifests.errors import FieldPath
from meshd.manifests.reader import MISSING, DocumentReader
from meshd.model.objects import DEFAULT_NAMESPACE, ObjectMeta

_SERVER_SET = "ignored (set by the server)"
SERVER_FIELDS: Mapping[str, str] = {
    key: _SERVER_SET
    for key in (
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "managedFields",
        "ownerReferences",
        "finalizers",
    )
}
MAX_ANNOTATIONS_BYTES = 256 * 1024


def read_labels(reader: DocumentReader, obj: Mapping[str, Any], key: str, path: FieldPath) -> dict[str, str]:
    """A label map (also a selector's matchLabels): qualified-name keys, label values."""
    return reader.string_map(obj, key, path, check_key=names.qualified_name, check_value=names.label_value)


def read_annotations(reader: DocumentReader, obj: Mapping[str, Any], path: FieldPath) -> dict[str, str]:
    annotations = reader.string_map(obj, "annotations", path, check_key=names.qualified_name)
    size = sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())
    if size > MAX_ANNOTATIONS_BYTES:
        raise reader.fail(
            path + ("annotations",), f"too long: must have at most {MAX_ANNOTATIONS_BYTES} bytes"
        )
    return annotations


def read_object_meta(
    reader: DocumentReader, doc: Mapping[str, Any], *, name_check: Callable[[str], str | None]
) -> ObjectMeta:
    """A top-level object's metadata; sets reader.name as soon as the name is known to be valid."""
    path: FieldPath = ("metadata",)
    meta = reader.mapping(reader.get(doc, "metadata", (), required=True), path)
    reader.check_fields(
        meta,
        path,
        known=("name", "namespace", "labels", "annotations"),
        ignored=SERVER_FIELDS,
        unsupported=("generateName",),
    )
    name = reader.string(meta, "name", path, required=True, allow_empty=False)
    reader.check_name(name, path + ("name",), name_check)
    reader.name = name
    namespace = reader.string(meta, "namespace", path) or DEFAULT_NAMESPACE
    reader.check_name(namespace, path + ("namespace",), names.dns1123_label)
    return ObjectMeta(
        name=name or "",
        namespace=namespace,
        labels=read_labels(reader, meta, "labels", path),
        annotations=read_annotations(reader, meta, path),
    )


def read_template_meta(
    reader: DocumentReader, template: Mapping[str, Any], path: FieldPath, *, namespace: str
) -> ObjectMeta:
    """A pod template's metadata: labels and annotations (a name or namespace there is ignored)."""
    value = reader.get(template, "metadata", path)
    if value is MISSING:
        return ObjectMeta(name="", namespace=namespace)
    meta = reader.mapping(value, path + ("metadata",))
    ignored = {
        **SERVER_FIELDS,
        "name": "ignored in a pod template",
        "generateName": "ignored in a pod template",
    }
    ignored["namespace"] = "ignored in a pod template (pods go to the object's namespace)"
    reader.check_fields(meta, path + ("metadata",), known=("labels", "annotations"), ignored=ignored)
    return ObjectMeta(
        name="",
        namespace=namespace,
        labels=read_labels(reader, meta, "labels", path + ("metadata",)),
        annotations=read_annotations(reader, meta, path + ("metadata",)),
    )
