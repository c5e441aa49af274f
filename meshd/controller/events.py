"""Kubernetes-style Events (`describe` shows them): a bounded, in-memory log per object."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    kind: str
    namespace: str
    name: str
    type: str  # Normal | Warning
    reason: str
    message: str
    time: float
    event_name: str = ""  # the Event's metadata.name when a client created it (else derived from the object)
    component: str = "meshd"  # who reported it (source.component, reportingController)


class EventLog:
    def __init__(self, *, limit: int = 2000, clock: Callable[[], float] = time.time) -> None:
        self._events: deque[Event] = deque(maxlen=limit)
        self._clock = clock

    def record(self, kind: str, namespace: str, name: str, type_: str, reason: str, message: str, *,
               event_name: str = "", component: str = "meshd") -> None:
        self._events.append(Event(kind, namespace, name, type_, reason, message, self._clock(), event_name,
                                  component))

    def of(self, kind: str, namespace: str, name: str) -> list[Event]:
        return [e for e in self._events if (e.kind, e.namespace, e.name) == (kind, namespace, name)]

    def in_namespace(self, namespace: str | None) -> list[Event]:
        return [e for e in self._events if namespace is None or e.namespace == namespace]
