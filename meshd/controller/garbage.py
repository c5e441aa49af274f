"""The garbage collector's decision over ownerReferences, as Kubernetes' (`kubectl delete --cascade=orphan`,
DeleteOptions.propagationPolicy=Orphan): an object's dependents are the objects whose ownerReferences name it
(by kind and name, and by uid when both sides have one); orphaning them removes that one reference and keeps
every other, and the dependents keep running. Pure: the controller gathers the candidates and enacts the plan
(meshd.controller.cascade)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OwnerReference:
    kind: str
    name: str
    uid: str = ""


@dataclass(frozen=True)
class Dependent:
    """An object that may have owners: its identity and its ownerReferences as the API shows them."""

    kind: str
    namespace: str
    name: str
    owners: tuple[OwnerReference, ...] = ()


@dataclass(frozen=True)
class Orphaning:
    """One dependent released by a deleted owner, and the ownerReferences it keeps."""

    dependent: Dependent
    keeps: tuple[OwnerReference, ...]


class CannotOrphan(ValueError):
    """meshd cannot keep these dependents running without their owner; nothing was changed."""


def names(reference: OwnerReference, owner: OwnerReference) -> bool:
    """Whether an ownerReference points to this owner (a reference or owner without a uid matches by name)."""
    return (reference.kind == owner.kind and reference.name == owner.name
            and (not reference.uid or not owner.uid or reference.uid == owner.uid))


def orphan(owner: OwnerReference, namespace: str, candidates: list[Dependent]) -> list[Orphaning]:
    """The dependents of `owner` (in its namespace; a cluster-scoped owner's anywhere) and what each keeps."""
    plan = []
    for dependent in candidates:
        if namespace and dependent.namespace != namespace:
            continue
        if any(names(ref, owner) for ref in dependent.owners):
            plan.append(Orphaning(dependent, tuple(r for r in dependent.owners if not names(r, owner))))
    return plan


def refusal(owner: OwnerReference, plan: list[Orphaning], *, releasable: frozenset[str]) -> str | None:
    """Why the plan cannot be carried out (a dependent of a kind meshd cannot release), or None."""
    kinds = sorted({o.dependent.kind for o in plan} - releasable)
    if not kinds:
        return None
    return (f"meshd cannot keep the {', '.join(k + 's' for k in kinds)} of {owner.kind} \"{owner.name}\" running "
            f"without it here: deleting it deletes them (use --cascade=background or foreground)")


__all__ = ["CannotOrphan", "Dependent", "OwnerReference", "Orphaning", "names", "orphan", "refusal"]
