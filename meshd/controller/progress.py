"""A Deployment's rollout progress (the progressDeadlineSeconds decision) kept in its stored status, as Kubernetes
keeps it in the Progressing condition: `lastUpdateTime` is when the rollout last made progress, the reason says
whether it completed or timed out. The controller follows a rollout in memory and writes the condition when it
changes; a controller that has no memory of a rollout (a new leader, an agent restarted) takes it up from the
stored condition, so the deadline runs on from the last progress, not from the take-over.

The decisions are pure (`restored`, `progressing_condition`); `ProgressWriter` is the thin write."""

from __future__ import annotations

import calendar
import copy
import dataclasses
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from meshd.controller.storewriter import StoreWriter
from meshd.store import ObjectStore

COMPLETE, FAILED, UPDATED = "NewReplicaSetAvailable", "ProgressDeadlineExceeded", "ReplicaSetUpdated"


@dataclasses.dataclass
class Progress:
    """A Deployment's rollout as the controller follows it."""

    last_progress: float
    complete: bool = False
    failed: bool = False
    message: str = ""
    snapshot: tuple = ()
    announced: str = ""  # the new ReplicaSet whose rollout's end was announced (its event goes out once)


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _parse(text: Any) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def progressing_condition(progress: Progress, new_name: str) -> dict[str, Any]:
    """The Progressing condition of a Deployment's status. Pure."""
    if progress.failed:
        status, reason, message = "False", FAILED, progress.message
    elif progress.complete:
        status, reason, message = "True", COMPLETE, f'ReplicaSet "{new_name}" has successfully progressed.'
    else:
        status, reason, message = "True", UPDATED, f'ReplicaSet "{new_name}" is progressing.'
    return {"type": "Progressing", "status": status, "reason": reason, "message": message,
            "lastUpdateTime": rfc3339(progress.last_progress)}


def stored_status(progress: Progress, generation: int, new_name: str) -> dict[str, Any]:
    """What the store keeps of a rollout: the generation it follows and its Progressing condition. Pure."""
    return {"observedGeneration": generation, "conditions": [progressing_condition(progress, new_name)]}


def slack(deadline_seconds: float) -> float:
    """How far the rollout's last progress may run ahead of the stored one before it is written again: a tenth of
    the deadline, between 1 and 30 s (a rollout writes its status at most every 30 s, not at every pod). Pure."""
    return min(max(deadline_seconds / 10, 1.0), 30.0)


def restored(obj: Mapping[str, Any] | None, *, snapshot: tuple, now: float) -> Progress | None:
    """The rollout as a stored Deployment's status says, if it says so for the Deployment's current generation
    (a newer spec is a new rollout); `snapshot` is what the controller sees now (progress is counted from it).
    A rollout still progressing is given the slack of its writes (its last progress may be that much later than
    stored): its deadline may pass that much late, never early. Pure."""
    if obj is None:
        return None
    status = obj.get("status") or {}
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    if not isinstance(status, Mapping) or int(status.get("observedGeneration") or -1) != generation:
        return None
    condition = next((c for c in status.get("conditions") or [] if isinstance(c, Mapping)
                      and c.get("type") == "Progressing"), None)
    last = _parse(condition.get("lastUpdateTime")) if condition is not None else None
    if condition is None or last is None:
        return None
    failed = condition.get("reason") == FAILED
    if condition.get("reason") == UPDATED:
        last += slack(float((obj.get("spec") or {}).get("progressDeadlineSeconds") or 600))
    complete = condition.get("reason") == COMPLETE
    announced = re.match(r'ReplicaSet "([^"]+)"', str(condition.get("message") or "")) if complete else None
    return Progress(last_progress=min(last, now), complete=complete, failed=failed,
                    message=str(condition.get("message") or "") if failed else "", snapshot=snapshot,
                    announced=announced.group(1) if announced else "")


def with_stored_status(desired: dict[str, Any], stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """A desired Deployment written by a user keeps the status the store has (as the API server keeps status on
    a write of the main resource): a label changed does not lose the rollout. Pure."""
    if stored is not None and stored.get("status") and desired.get("kind") == "Deployment":
        return {**desired, "status": copy.deepcopy(stored["status"])}
    return desired


class ProgressWriter:
    """Writes a Deployment's rollout into its stored status when the condition changes (coalesced per
    Deployment, off the reconcile pass; a write that raced another is read again and retried)."""

    def __init__(self, store: Callable[[], ObjectStore]) -> None:
        self._store = store
        self.writer = StoreWriter("deployment status")

    def save(self, key: tuple[str, str], progress: Progress, generation: int, new_name: str,
             deadline_seconds: float = 600) -> None:
        """Writes the rollout when its condition changed, or its progress ran `slack` ahead of the stored."""
        status = stored_status(progress, generation, new_name)
        obj = self._store().get("Deployment", *key)
        if obj is None or (obj.get("status") or {}).get("conditions") == status["conditions"]:
            return  # as stored (a new generation that left the rollout as it was, e.g. a label, is not written)
        before = restored(obj, snapshot=(), now=progress.last_progress)
        if before is not None and (before.complete, before.failed) == (progress.complete, progress.failed) and \
                not progress.complete and not progress.failed and before.last_progress >= progress.last_progress:
            return  # progressing as stored, within the slack: not written at every pod
        self.writer.submit(key, lambda: self._write(key, status), last=True)

    async def _write(self, key: tuple[str, str], status: dict[str, Any]) -> None:
        store = self._store()
        obj = store.get("Deployment", *key)
        if obj is None or obj.get("status") == status or \
                int(obj["metadata"].get("generation") or 0) != status["observedGeneration"]:
            return  # gone, written, or a newer spec (a new rollout) meanwhile
        await store.update({**obj, "status": status})  # with its resourceVersion: a racing write is a Conflict


__all__ = ["Progress", "ProgressWriter", "progressing_condition", "restored", "slack", "stored_status",
           "with_stored_status"]
