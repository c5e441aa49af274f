"""template_hash: a stable short name for a pod template's content (the ReplicaSet suffix)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from meshd.model.objects import PodTemplate

ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' SafeEncodeString alphabet: no vowels, no look-alikes
HASH_LENGTH = 10
TEMPLATE_HASH_LABEL = "pod-template-hash"


def template_hash(template: PodTemplate) -> str:
    """10 characters over the template's content: equal templates (whatever their YAML) hash equal."""
    form = canonical(template)
    metadata = form.get("metadata", {})
    for key in ("name", "namespace"):  # where the pods go is not what they are
        metadata.pop(key, None)
    labels = metadata.get("labels")
    if labels is not None:
        labels.pop(TEMPLATE_HASH_LABEL, None)
    text = json.dumps(form, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    number = int.from_bytes(hashlib.sha256(text.encode()).digest()[:16], "big")
    chars = []
    for _ in range(HASH_LENGTH):
        number, digit = divmod(number, len(ALPHABET))
        chars.append(ALPHABET[digit])
    return "".join(chars)


def canonical(value: Any) -> Any:
    """A JSON-able form of a model value; fields left at their defaults are omitted, so adding a
    defaulted field to the model later does not change existing hashes (and roll every Deployment)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"@": type(value).__name__}
        for f in dataclasses.fields(value):
            if not f.compare:
                continue
            item = getattr(value, f.name)
            if f.default is not dataclasses.MISSING and _same(item, f.default):
                continue
            if f.default_factory is not dataclasses.MISSING and _same(item, f.default_factory()):
                continue
            out[f.name] = canonical(item)
        return out
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _same(a: Any, b: Any) -> bool:
    return (
        type(a) is type(b)
        and a == b
        or (
            isinstance(a, (int, float)) and not isinstance(a, bool) and isinstance(b, (int, float)) and a == b
        )
    )
