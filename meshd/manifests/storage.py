"""v1 PersistentVolumeClaim, v1 PersistentVolume and storage.k8s.io/v1 StorageClass, validated as the API server
validates them (the field paths are Kubernetes'), and a pod's `persistentVolumeClaim` and `hostPath` volumes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from meshd.manifests import names
from meshd.manifests.errors import FieldPath
from meshd.manifests.quantity import QuantityError, parse_quantity
from meshd.manifests.reader import MISSING, DocumentReader
from meshd.model.objects import (
    ClaimRef,
    HostPathVolumeSource,
    ObjectMeta,
    PersistentVolume,
    PersistentVolumeClaim,
    PersistentVolumeClaimVolumeSource,
    StorageClass,
    Volume,
)

ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice",
                   "BlockDevice")
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
BETA_DEFAULT_CLASS_ANNOTATION = "storageclass.beta.kubernetes.io/is-default-class"
LOCAL_PROVISIONER = "meshd.io/local"
_SPEC: FieldPath = ("spec",)
_ONE_NODE = "ignored (one node)"


def read_storage_quantity(reader: DocumentReader, value: Any, path: FieldPath) -> int:
    """A size in bytes ("1Gi"), greater than zero as Kubernetes requires of a claim's or volume's storage."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise reader.fail(path, f"expected a quantity such as 1Gi, got {value!r}")
    try:
        quantity = parse_quantity(value)
    except QuantityError as error:
        raise reader.fail(path, str(error)) from None
    if quantity <= 0:
        raise reader.fail(path, f"must be greater than zero, got {value}")
    return int(quantity.to_integral_value(rounding="ROUND_CEILING"))


def _access_modes(reader: DocumentReader, spec: Mapping[str, Any], path: FieldPath) -> tuple[str, ...]:
    modes = reader.strings(spec, "accessModes", path)
    if not modes:
        raise reader.fail(path + ("accessModes",), "at least 1 access mode is required")
    for i, mode in enumerate(modes):
        if mode not in ACCESS_MODES:
            raise reader.fail(path + ("accessModes", i),
                              f'unsupported value "{mode}" (supported: {", ".join(ACCESS_MODES)})')
    if "ReadWriteOncePod" in modes and len(set(modes)) > 1:
        raise reader.fail(path + ("accessModes",), "may not use ReadWriteOncePod with other access modes")
    return tuple(dict.fromkeys(modes))


def _volume_mode(reader: DocumentReader, spec: Mapping[str, Any], path: FieldPath) -> None:
    mode = reader.string(spec, "volumeMode", path, default="Filesystem")
    if mode == "Block":
        raise reader.fail(path + ("volumeMode",), "Block is not supported (Filesystem only)")
    if mode != "Filesystem":
        raise reader.fail(path + ("volumeMode",), f'unsupported value "{mode}" (supported: Filesystem, Block)')


def _storage_class_name(reader: DocumentReader, spec: Mapping[str, Any], path: FieldPath) -> str | None:
    name = reader.string(spec, "storageClassName", path)
    if name:
        reader.check_name(name, path + ("storageClassName",), names.dns1123_subdomain)
    return name


def read_persistent_volume_claim(reader: DocumentReader, doc: Mapping[str, Any],
                                 metadata: ObjectMeta) -> PersistentVolumeClaim:
    spec = reader.mapping(reader.get(doc, "spec", (), required=True), _SPEC)
    reader.check_fields(
        spec, _SPEC,
        known=("accessModes", "resources", "storageClassName", "volumeName", "volumeMode"),
        unsupported=("selector", "dataSource", "dataSourceRef", "volumeAttributesClassName"),
    )
    modes = _access_modes(reader, spec, _SPEC)
    rpath = _SPEC + ("resources",)
    resources = reader.mapping(reader.get(spec, "resources", _SPEC, required=True), rpath)
    reader.check_fields(resources, rpath, known=("requests",),
                        ignored={"limits": "ignored (a claim's size is its request)"})
    qpath = rpath + ("requests",)
    requests = reader.mapping(reader.get(resources, "requests", rpath, required=True), qpath)
    reader.check_fields(requests, qpath, known=("storage",))
    size = read_storage_quantity(reader, reader.get(requests, "storage", qpath, required=True),
                                 qpath + ("storage",))
    _volume_mode(reader, spec, _SPEC)
    volume_name = reader.string(spec, "volumeName", _SPEC) or ""
    if volume_name:
        reader.check_name(volume_name, _SPEC + ("volumeName",), names.dns1123_subdomain)
    return PersistentVolumeClaim(metadata=metadata, access_modes=modes, storage_bytes=size,
                                 storage_class_name=_storage_class_name(reader, spec, _SPEC),
                                 volume_name=volume_name, raw=doc)


def read_persistent_volume(reader: DocumentReader, doc: Mapping[str, Any],
                           metadata: ObjectMeta) -> PersistentVolume:
    spec = reader.mapping(reader.get(doc, "spec", (), required=True), _SPEC)
    sources = ("hostPath", "local", "csi")
    reader.check_fields(
        spec, _SPEC,
        known=("capacity", "accessModes", "persistentVolumeReclaimPolicy", "storageClassName", "claimRef",
               "volumeMode", "nodeAffinity", *sources),  # nodeAffinity: the nodes of a local volume (a cluster's)
        ignored={"mountOptions": "ignored (bind mounts take no options)"},
        unsupported=("nfs", "iscsi", "fc", "rbd", "cephfs", "glusterfs", "awsElasticBlockStore",
                     "gcePersistentDisk", "azureDisk", "azureFile", "cinder", "flexVolume", "flocker",
                     "portworxVolume", "quobyte", "scaleIO", "storageos", "photonPersistentDisk",
                     "vsphereVolume", "volumeAttributesClassName"),
    )
    cpath = _SPEC + ("capacity",)
    capacity = reader.mapping(reader.get(spec, "capacity", _SPEC, required=True), cpath)
    reader.check_fields(capacity, cpath, known=("storage",))
    size = read_storage_quantity(reader, reader.get(capacity, "storage", cpath, required=True),
                                 cpath + ("storage",))
    modes = _access_modes(reader, spec, _SPEC)
    policy = reader.choice(spec, "persistentVolumeReclaimPolicy", _SPEC, ("Retain", "Delete", "Recycle"),
                           default="Retain")
    if policy == "Recycle":
        raise reader.fail(_SPEC + ("persistentVolumeReclaimPolicy",),
                          "Recycle is not supported (deprecated in Kubernetes): use Retain or Delete")
    _volume_mode(reader, spec, _SPEC)
    given = [s for s in sources if reader.get(spec, s, _SPEC) is not MISSING]
    if not given:
        raise reader.fail(_SPEC, "must specify a volume type (hostPath, local or csi)")
    if len(given) > 1:
        raise reader.fail(_SPEC + (given[1],), "may not specify more than 1 volume type")
    source = given[0]
    spath = _SPEC + (source,)
    body = reader.mapping(spec[source], spath)
    host_path = csi_driver = handle = None
    if source == "csi":
        reader.check_fields(body, spath, known=("driver", "volumeHandle", "volumeAttributes"),
                            ignored={"fsType": "ignored", "readOnly": "ignored"})
        csi_driver = reader.string(body, "driver", spath, required=True, allow_empty=False)
        if csi_driver != LOCAL_PROVISIONER:
            raise reader.fail(spath + ("driver",), f'unsupported CSI driver "{csi_driver}" '
                                                   f"(supported: {LOCAL_PROVISIONER})")
        handle = reader.string(body, "volumeHandle", spath, required=True, allow_empty=False)
        reader.string_map(body, "volumeAttributes", spath)
    else:
        known = ("path", "type") if source == "hostPath" else ("path",)
        reader.check_fields(body, spath, known=known, ignored={"fsType": "ignored"} if source == "local" else {})
        host_path = reader.string(body, "path", spath, required=True, allow_empty=False)
        assert host_path is not None
        if not host_path.startswith("/"):
            raise reader.fail(spath + ("path",), "must be an absolute path")
        if source == "hostPath":
            reader.choice(body, "type", spath, HOST_PATH_TYPES, default="")
    return PersistentVolume(
        metadata=metadata, capacity_bytes=size, access_modes=modes, reclaim_policy=cast(Any, policy),
        storage_class_name=_storage_class_name(reader, spec, _SPEC) or "",
        claim_ref=_claim_ref(reader, spec), host_path=host_path, csi_driver=csi_driver or "",
        volume_handle=handle or "", raw=doc,
    )


def _claim_ref(reader: DocumentReader, spec: Mapping[str, Any]) -> ClaimRef | None:
    value = reader.get(spec, "claimRef", _SPEC)
    if value is MISSING:
        return None
    path = _SPEC + ("claimRef",)
    ref = reader.mapping(value, path)
    reader.check_fields(ref, path, known=("namespace", "name", "uid", "kind", "apiVersion", "resourceVersion"),
                        ignored={"fieldPath": "ignored"})
    kind = reader.string(ref, "kind", path, default="PersistentVolumeClaim")
    if kind != "PersistentVolumeClaim":
        raise reader.fail(path + ("kind",), f'must be PersistentVolumeClaim, got "{kind}"')
    name = reader.string(ref, "name", path, required=True, allow_empty=False)
    namespace = reader.string(ref, "namespace", path) or "default"
    reader.check_name(namespace, path + ("namespace",), names.dns1123_label)
    return ClaimRef(namespace=namespace, name=name or "", uid=reader.string(ref, "uid", path) or "")


def read_storage_class(reader: DocumentReader, doc: Mapping[str, Any], metadata: ObjectMeta) -> StorageClass:
    """A StorageClass has its fields at the top level (no spec)."""
    provisioner = reader.string(doc, "provisioner", (), required=True, allow_empty=False)
    policy = reader.choice(doc, "reclaimPolicy", (), ("Delete", "Retain"), default="Delete")
    mode = reader.choice(doc, "volumeBindingMode", (), ("Immediate", "WaitForFirstConsumer"), default="Immediate")
    if reader.string_map(doc, "parameters", ()):
        reader.warn(("parameters",), "ignored (meshd.io/local takes no parameters)")
    for key, value in metadata.annotations.items():
        if key in (DEFAULT_CLASS_ANNOTATION, BETA_DEFAULT_CLASS_ANNOTATION) and value not in ("true", "false"):
            raise reader.fail(("metadata", "annotations", key), f'must be "true" or "false", got "{value}"')
    return StorageClass(metadata=metadata, provisioner=provisioner or "", reclaim_policy=cast(Any, policy),
                        volume_binding_mode=cast(Any, mode), raw=doc)


STORAGE_CLASS_FIELDS = ("apiVersion", "kind", "metadata", "provisioner", "reclaimPolicy", "volumeBindingMode",
                        "parameters")
STORAGE_CLASS_IGNORED: Mapping[str, str] = {
    "allowVolumeExpansion": "not supported (ignored): a claim keeps its size",
    "mountOptions": "ignored (bind mounts take no options)",
    "allowedTopologies": _ONE_NODE,
}


def is_default_class(sc: StorageClass) -> bool:
    annotations = sc.metadata.annotations
    return "true" in (annotations.get(DEFAULT_CLASS_ANNOTATION), annotations.get(BETA_DEFAULT_CLASS_ANNOTATION))


# --- pod volumes -----------------------------------------------------------------------------------------


def read_pvc_source(reader: DocumentReader, value: Any, path: FieldPath) -> PersistentVolumeClaimVolumeSource:
    body = reader.mapping(value, path)
    reader.check_fields(body, path, known=("claimName", "readOnly"))
    claim = reader.string(body, "claimName", path, required=True, allow_empty=False)
    reader.check_name(claim, path + ("claimName",), names.dns1123_subdomain)
    return PersistentVolumeClaimVolumeSource(claim_name=claim or "", read_only=reader.boolean(body, "readOnly", path))


def read_host_path_source(reader: DocumentReader, value: Any, path: FieldPath) -> HostPathVolumeSource:
    body = reader.mapping(value, path)
    reader.check_fields(body, path, known=("path", "type"))
    host_path = reader.string(body, "path", path, required=True, allow_empty=False) or ""
    if not host_path.startswith("/"):
        raise reader.fail(path + ("path",), "must be an absolute path")
    if any(part == ".." for part in host_path.split("/")):
        raise reader.fail(path + ("path",), "must not contain '..'")
    kind = reader.choice(body, "type", path, HOST_PATH_TYPES, default="")
    return HostPathVolumeSource(path=host_path, type=kind)


VOLUME_SOURCE_FIELDS = ("persistentVolumeClaim", "hostPath")


def read_volume_sources(reader: DocumentReader, volume: Mapping[str, Any], path: FieldPath) -> dict[str, Any]:
    """A pod volume's persistentVolumeClaim or hostPath source as Volume's keyword arguments ({} for emptyDir)."""
    given = [k for k in ("emptyDir", *VOLUME_SOURCE_FIELDS) if reader.get(volume, k, path) is not MISSING]
    if len(given) > 1:
        raise reader.fail(path + (given[1],), "may not specify more than 1 volume type")
    if "persistentVolumeClaim" in given:
        return {"persistent_volume_claim": read_pvc_source(reader, volume["persistentVolumeClaim"],
                                                           path + ("persistentVolumeClaim",))}
    if "hostPath" in given:
        return {"host_path": read_host_path_source(reader, volume["hostPath"], path + ("hostPath",))}
    return {}


def render_volume_source(volume: Volume) -> dict[str, Any]:
    """A pod volume's source as the API shows it (with Kubernetes' defaults)."""
    if volume.persistent_volume_claim is not None:
        pvc = volume.persistent_volume_claim
        return {"persistentVolumeClaim": {"claimName": pvc.claim_name, **({"readOnly": True} if pvc.read_only
                                                                          else {})}}
    if volume.host_path is not None:
        return {"hostPath": {"path": volume.host_path.path, "type": volume.host_path.type}}
    return {"emptyDir": {"medium": volume.medium} if volume.medium else {}}


__all__ = ["render_volume_source", "VOLUME_SOURCE_FIELDS", "read_volume_sources", "ACCESS_MODES", "DEFAULT_CLASS_ANNOTATION", "HOST_PATH_TYPES", "LOCAL_PROVISIONER",
           "STORAGE_CLASS_FIELDS", "STORAGE_CLASS_IGNORED", "is_default_class", "read_host_path_source",
           "read_persistent_volume", "read_persistent_volume_claim", "read_pvc_source", "read_storage_class",
           "read_storage_quantity"]
