"""v1 ConfigMap and v1 Secret: keys, base64 data, stringData, the Secret types' required keys, `immutable`.

A Secret's values never reach a message: errors name the key and the problem, never the value. A Secret's
`raw` is normalised as the API server stores it (stringData merged into data as base64, no stringData)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from meshd.manifests.errors import FieldPath, ManifestError
from meshd.manifests.reader import MISSING, DocumentReader, describe_value
from meshd.model.objects import ConfigMap, ObjectMeta, Secret

MAX_SIZE = 1024 * 1024  # Kubernetes' limit on a ConfigMap's or Secret's data (MaxSecretSize, and etcd's)
CONFIG_MAP_FIELDS = ("apiVersion", "kind", "metadata", "data", "binaryData", "immutable")
SECRET_FIELDS = ("apiVersion", "kind", "metadata", "data", "stringData", "type", "immutable")
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

# the keys each built-in Secret type requires (all of them, or `any` of them for basic-auth)
_REQUIRED: Mapping[str, tuple[str, ...]] = {
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
}
_JSON_KEYS = {"kubernetes.io/dockerconfigjson": ".dockerconfigjson", "kubernetes.io/dockercfg": ".dockercfg"}
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"


def config_key_problem(key: str) -> str | None:
    """Kubernetes' IsConfigMapKey: why `key` cannot name a ConfigMap's or Secret's entry (a file name too)."""
    if not key:
        return "must not be empty"
    if len(key) > 253:
        return "must be no more than 253 characters"
    if not _KEY.match(key):
        return "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
    if key in (".", ".."):
        return f"must not be '{key}'"
    if key.startswith(".."):
        return "must not start with '..'"
    return None


def _keys(reader: DocumentReader, doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = reader.get(doc, key, ())
    if value is MISSING:
        return {}
    mapping = reader.mapping(value, (key,))
    for k in mapping:
        if not isinstance(k, str):
            raise reader.fail((key,), f"expected string keys, got {describe_value(k)}")
        if problem := config_key_problem(k):
            raise reader.fail((key, k), f"invalid key: {problem}")
    return mapping


def _text(reader: DocumentReader, value: Any, path: FieldPath) -> str:
    """A value that must be a string; the message never shows the value (it may be a secret)."""
    if not isinstance(value, str):
        shown = "null" if value is None else describe_value(value).split(" ")[0]  # the type alone
        shown = {"boolean": "a boolean", "integer": "an integer", "number": "a number"}.get(shown, shown)
        shown = "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else shown
        raise reader.fail(path, f"expected a string, got {shown} (quote it; the value is not shown)")
    return value


def _base64(reader: DocumentReader, value: Any, path: FieldPath) -> bytes:
    text = _text(reader, value, path)
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise reader.fail(path, "illegal base64 data (the value is not shown)") from None


def _check_size(reader: DocumentReader, size: int, path: FieldPath) -> None:
    if size > MAX_SIZE:
        raise reader.fail(path, f"too long: the data must have at most {MAX_SIZE} bytes, got {size}")


def read_config_map(reader: DocumentReader, doc: Mapping[str, Any], metadata: ObjectMeta) -> ConfigMap:
    data = {k: _text(reader, v, ("data", k)) for k, v in _keys(reader, doc, "data").items()}
    binary = {k: _base64(reader, v, ("binaryData", k)) for k, v in _keys(reader, doc, "binaryData").items()}
    for key in binary:
        if key in data:
            raise reader.fail(("binaryData", key), "duplicate of a key present in data")
    _check_size(reader, sum(len(k) + len(v.encode()) for k, v in data.items())
                + sum(len(k) + len(v) for k, v in binary.items()), ("data",))
    return ConfigMap(metadata=metadata, data=data, binary_data=binary,
                     immutable=reader.boolean(doc, "immutable", ()), raw=doc)


def read_secret(reader: DocumentReader, doc: Mapping[str, Any], metadata: ObjectMeta) -> Secret:
    secret_type = reader.string(doc, "type", (), default="Opaque") or "Opaque"
    if secret_type == SERVICE_ACCOUNT_TOKEN:
        raise reader.fail(("type",), f"{SERVICE_ACCOUNT_TOKEN} is not supported (meshd has no service accounts)")
    data = {k: _base64(reader, v, ("data", k)) for k, v in _keys(reader, doc, "data").items()}
    for key, value in _keys(reader, doc, "stringData").items():
        data[key] = _text(reader, value, ("stringData", key)).encode()  # stringData wins, as in Kubernetes
    _check_size(reader, sum(len(k) + len(v) for k, v in data.items()), ("data",))
    for key in _REQUIRED.get(secret_type, ()):
        if key not in data:
            raise reader.fail(("data", key), f"required for a {secret_type} Secret")
    if secret_type == "kubernetes.io/basic-auth" and "username" not in data and "password" not in data:
        raise reader.fail(("data", "username"), "a kubernetes.io/basic-auth Secret needs a username or a password")
    if json_key := _JSON_KEYS.get(secret_type):
        try:
            parsed = json.loads(data[json_key])
        except (ValueError, UnicodeDecodeError):
            raise reader.fail(("data", json_key), "invalid JSON (the value is not shown)") from None
        if not isinstance(parsed, dict):
            raise reader.fail(("data", json_key), "expected a JSON object")
    raw = {k: v for k, v in doc.items() if k != "stringData"}
    raw["type"] = secret_type
    if data:
        raw["data"] = {k: base64.b64encode(v).decode() for k, v in data.items()}
    return Secret(metadata=metadata, type=secret_type, data=data,
                  immutable=reader.boolean(doc, "immutable", ()), raw=raw)


def update_problem(old: ConfigMap | Secret, new: ConfigMap | Secret) -> tuple[FieldPath, str] | None:
    """Why `new` may not replace `old` (Kubernetes' update validation), or None: an immutable object's data and
    immutability, and a Secret's type, never change."""
    if isinstance(old, Secret) and isinstance(new, Secret) and old.type != new.type:
        return ("type",), f'field is immutable (was "{old.type}")'
    if not old.immutable:
        return None
    if not new.immutable:
        return ("immutable",), "field is immutable when `immutable` is set"
    if old.data != new.data or getattr(old, "binary_data", None) != getattr(new, "binary_data", None):
        return ("data",), "field is immutable when `immutable` is set"
    return None


def render_config(obj: ConfigMap | Secret) -> dict[str, Any]:
    """The fields after metadata, as the API server shows them (a Secret's data in base64)."""
    out: dict[str, Any] = {}
    if isinstance(obj, Secret):
        out["type"] = obj.type
        if obj.data:
            out["data"] = {k: base64.b64encode(v).decode() for k, v in obj.data.items()}
    else:
        if obj.data:
            out["data"] = dict(obj.data)
        if obj.binary_data:
            out["binaryData"] = {k: base64.b64encode(v).decode() for k, v in obj.binary_data.items()}
    if obj.immutable:
        out["immutable"] = True
    return out


def data_count(obj: Mapping[str, Any]) -> int:
    """The DATA column of `kubectl get cm,secret`: how many keys (data and binaryData)."""
    return len(obj.get("data") or {}) + len(obj.get("binaryData") or {})


def check_update(old: Any, new: ConfigMap | Secret, source: str) -> None:
    """Raises ManifestError when `new` may not replace `old` (see update_problem)."""
    if isinstance(old, (ConfigMap, Secret)) and (problem := update_problem(old, new)):
        path, message = problem
        raise ManifestError(message, source=source, kind=new.kind, name=new.metadata.name, path=path)
