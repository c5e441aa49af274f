"""Which of a Service's available endpoints the sidecar balances over: all of them, or, for a Service with
`trafficDistribution: PreferClose`, those on the sidecar's own node while any of them is available (ready and
not ejected), falling back to all when none is (Kubernetes' PreferClose: stay close, never fail for it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

PREFER_CLOSE = "PreferClose"


class Placed(Protocol):
    node: str


T = TypeVar("T", bound=Placed)


def balanced(available: Sequence[T], *, distribution: str | None, node: str) -> list[T]:
    """The endpoints to balance over; `node` is the sidecar's ("" unknown: no preference)."""
    if distribution != PREFER_CLOSE or not node:
        return list(available)
    return [e for e in available if e.node == node] or list(available)
