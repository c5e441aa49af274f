"""Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`), which kubectl's typed
clients send whatever the server prefers: `kubectl create secret|configmap|namespace|deployment|job|cronjob|
service|ingress`, and for the kinds meshd keeps (meshd.model.kept) `kubectl create sa|role|rolebinding|
clusterrole|clusterrolebinding|quota|pdb|priorityclass` and `kubectl autoscale`. The `k8s\\0` envelope (a
runtime.Unknown: typeMeta, raw), then the object's generated.proto message decoded to the JSON shape the API takes.
Pure; anything else is a ProtobufError.

What is read: the ObjectMeta fields a new object carries (name, generateName, namespace, resourceVersion, labels,
annotations, ownerReferences) for every kind; all of v1 ConfigMap and v1 Secret; nothing more of a Namespace (it
has no spec a client sets); the spec of a Deployment, Job, CronJob, Service, Pod or Ingress as far as
meshd.api.protoschema's table goes (what kubectl's generators fill in, and more), never less: a field outside it
is refused by name; the same for the whole of a kept kind's object (protoschema.OBJECTS). A `--from=cronjob` Job's
spec meshd.api.writes takes from its CronJob."""

from __future__ import annotations

import base64
from typing import Any

from meshd.api import protoschema
from meshd.model.protowire import fields

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
_DECODED = {("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Namespace"), *protoschema.SPECS, *protoschema.OBJECTS}


class ProtobufError(ValueError):
    pass


_KINDS = ", ".join(sorted(f"{v} {k}" for v, k in _DECODED))


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a string field")
    return value.decode()


def _entry(value: int | bytes) -> tuple[str, bytes]:
    """A map entry: key (1) and value (2)."""
    if not isinstance(value, bytes):
        raise ProtobufError("expected a map entry")
    key, item = "", b""
    for number, part in fields(value):
        if number == 1:
            key = _text(part)
        elif number == 2 and isinstance(part, bytes):
            item = part
    return key, item


_META_STRINGS = {1: "name", 2: "generateName", 3: "namespace", 6: "resourceVersion"}
_OWNER_FIELDS = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion", 6: "controller", 7: "blockOwnerDeletion"}


def _metadata(data: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for number, value in fields(data):
        if number in _META_STRINGS and _text(value):  # proto2 writes empty strings too: "" is unset
            meta[_META_STRINGS[number]] = _text(value)
        elif number in (11, 12):
            key, item = _entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = item.decode()
        elif number == 13 and isinstance(value, bytes):
            meta.setdefault("ownerReferences", []).append(_owner(value))
    return meta


def _owner(data: bytes) -> dict[str, Any]:
    owner: dict[str, Any] = {}
    for number, value in fields(data):
        if number in _OWNER_FIELDS:
            owner[_OWNER_FIELDS[number]] = bool(value) if number in (6, 7) else _text(value)
    return owner


def _config_field(obj: dict[str, Any], kind: str, number: int, value: int | bytes) -> None:
    """v1 ConfigMap: data 2, binaryData 3, immutable 4; v1 Secret: data 2 (bytes), type 3, stringData 4,
    immutable 5."""
    if number == (4 if kind == "ConfigMap" else 5):
        obj["immutable"] = bool(value)
    elif kind == "Secret" and number == 3:
        if _text(value):
            obj["type"] = _text(value)
    elif number in (2, 3, 4):
        key, item = _entry(value)
        if kind == "ConfigMap":
            name, shown = ("data", item.decode()) if number == 2 else ("binaryData", base64.b64encode(item).decode())
        else:
            name, shown = ("data", base64.b64encode(item).decode()) if number == 2 else ("stringData", item.decode())
        obj.setdefault(name, {})[key] = shown


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf request body as the JSON object it stands for; raises ProtobufError."""
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf body (no k8s\\0 prefix)")
    try:
        type_meta, raw = b"", b""
        for number, value in fields(body[len(MAGIC):]):
            if number == 1 and isinstance(value, bytes):
                type_meta = value
            elif number == 2 and isinstance(value, bytes):
                raw = value
        api_version = kind = ""
        for number, value in fields(type_meta):
            if number == 1:
                api_version = _text(value)
            elif number == 2:
                kind = _text(value)
        if (api_version, kind) not in _DECODED:
            raise ProtobufError(f"protobuf bodies are read for {_KINDS} only, not {api_version} {kind}: send "
                                f"application/json (kubectl create -f FILE, or --dry-run=client -o yaml | kubectl "
                                f"apply -f -)")
        obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
        spec = protoschema.SPECS.get((api_version, kind))
        whole = protoschema.OBJECTS.get((api_version, kind))
        if whole is not None:  # a kind meshd keeps (a ServiceAccount, RBAC...): every field but the metadata
            obj.update(protoschema.message(whole, raw))
        for number, value in fields(raw):
            if number == 1 and isinstance(value, bytes):
                obj["metadata"] = _metadata(value)
            elif kind in ("ConfigMap", "Secret"):
                _config_field(obj, kind, number, value)
            elif spec and number == 2 and isinstance(value, bytes):
                obj["spec"] = protoschema.message(spec, value, "spec")
        return obj
    except protoschema.SchemaError as error:
        raise ProtobufError(f"{kind} {error}: send it as JSON (kubectl create ... --dry-run=client -o yaml | "
                            f"kubectl apply -f -)") from None
    except UnicodeDecodeError as error:
        raise ProtobufError(f"a string field is not UTF-8: {error}") from None
    except ProtobufError:
        raise
    except ValueError as error:  # protowire's truncated or unknown wire types
        raise ProtobufError(str(error)) from None


__all__ = ["CONTENT_TYPE", "MAGIC", "ProtobufError", "decode"]
