"""Endpoints and readiness per Service, published as Reset/Add/Remove/DoesNotExist."""

from meshd.registry.endpoints import PodRecord, ServiceRecord
from meshd.registry.registry import Registry, Synced

__all__ = ["PodRecord", "Registry", "ServiceRecord", "Synced"]
