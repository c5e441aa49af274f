"""YAML -> model: Kubernetes manifests validated with field paths (errors) and ignored fields (warnings)."""

from meshd.manifests import quantity
from meshd.manifests.errors import ManifestError
from meshd.manifests.hashing import TEMPLATE_HASH_LABEL, template_hash
from meshd.manifests.loader import LoadResult, load_documents, load_objects
from meshd.manifests.render import render, to_manifest

__all__ = [
    "TEMPLATE_HASH_LABEL",
    "LoadResult",
    "ManifestError",
    "load_documents",
    "load_objects",
    "quantity",
    "render",
    "template_hash",
    "to_manifest",
]
