"""YAML -> model: Kubernetes manifests validated with field paths (errors) and ignored fields (warnings)."""

from meshd.manifests.errors import ManifestError
from meshd.manifests.loader import LoadResult, load_documents

__all__ = ["LoadResult", "ManifestError", "load_documents"]
