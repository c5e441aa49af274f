"""`meshd rollout`: whether a Deployment's rollout is done (kubectl's DeploymentStatusViewer) and history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"


@dataclass(frozen=True)
class RolloutStatus:
    message: str
    done: bool = False
    failed: bool = False


def rollout_status(deployment: Obj) -> RolloutStatus:
    """Where a rollout stands: waiting (with kubectl's message), done, or failed (progress deadline)."""
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    name = meta.get("name", "")
    generation = int(meta.get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    if generation > observed:
        return RolloutStatus("Waiting for deployment spec update to be observed...")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == TIMED_OUT_REASON:
            return RolloutStatus(f'deployment "{name}" exceeded its progress deadline', failed=True)
    replicas = 1 if spec.get("replicas") is None else int(spec["replicas"])
    updated = int(status.get("updatedReplicas") or 0)
    current = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    if updated < replicas:
        return RolloutStatus(waiting + f"{updated} out of {replicas} new replicas have been updated...")
    if current > updated:
        return RolloutStatus(waiting + f"{current - updated} old replicas are pending termination...")
    if available < updated:
        return RolloutStatus(waiting + f"{available} of {updated} updated replicas are available...")
    return RolloutStatus(f'deployment "{name}" successfully rolled out', done=True)


@dataclass(frozen=True)
class Revision:
    revision: int
    change_cause: str = ""
    template: Obj | None = None
    images: tuple[str, ...] = ()


def history_revisions(answer: Any) -> list[Revision]:
    """Revisions from the history route, oldest first.

    Accepts {"revisions"|"items": [{"revision", "changeCause", "images"|"template"}]} or a List of ReplicaSets carrying
    the deployment.kubernetes.io/revision annotation (what kubectl reads).
    """
    items = (
        answer
        if isinstance(answer, list)
        else (answer or {}).get("revisions") or (answer or {}).get("items") or []
    )
    revisions = []
    for item in items:
        if not isinstance(item, dict):
            continue
        meta = item.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        number: Any = item.get("revision", annotations.get(REVISION_ANNOTATION))
        try:
            revision = int(number)
        except (TypeError, ValueError):
            continue
        cause = item.get("changeCause") or annotations.get(CHANGE_CAUSE_ANNOTATION) or ""
        template = item.get("template") or (item.get("spec") or {}).get("template")
        containers = ((template or {}).get("spec") or {}).get("containers") or []
        images = tuple(item.get("images") or [c.get("image", "") for c in containers])
        revisions.append(Revision(revision, cause, template, images))
    return sorted(revisions, key=lambda r: r.revision)


def format_history(display_name: str, revisions: list[Revision]) -> str:
    """kubectl's `rollout history` table."""
    from meshd.cli.tabwriter import TableWriter

    rows = [["REVISION", "CHANGE-CAUSE"]] + [[str(r.revision), r.change_cause or "<none>"] for r in revisions]
    return f"{display_name} \n" + TableWriter().render(rows)
