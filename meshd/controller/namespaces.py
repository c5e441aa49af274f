"""v1 Namespaces as the API server keeps them: four exist from the start; an object in a namespace that does
not exist is refused (NotFound), one in a namespace being deleted too (Forbidden); deleting a namespace deletes
everything in it, and the namespace stays `Terminating` until its content is gone.

`meshd apply` and `meshd up` are friendlier than Kubernetes: they create a namespace their manifest needs and
does not define (saying so), as `helm install --create-namespace` does; the Kubernetes API (kubectl) refuses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from meshd.model.objects import KubeObject, Namespace, ObjectMeta

BUILTIN = ("default", "kube-node-lease", "kube-public", "kube-system")
# Content goes this long after its namespace was deleted, as the namespace controller works after the API
# answered: `kubectl delete -f` of a namespace and its objects deletes each of them, as with a real cluster.
CONTENT_DELAY = 1.0
UNDELETABLE = ("default", "kube-public", "kube-system")
Key = tuple[str, str, str]


class NamespaceTerminating(PermissionError):
    """An object written into a namespace being deleted (the API server's 403 Forbidden)."""


def namespace_object(name: str) -> Namespace:
    raw = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    return Namespace(metadata=ObjectMeta(name=name, namespace=""), raw=raw)


def missing_namespaces(objects: Sequence[KubeObject], *, exists: Callable[[str], bool],
                       terminating: Iterable[str]) -> list[str]:
    """The namespaces the objects live in that neither exist nor are defined among them, in order; raises
    NamespaceTerminating for an object in a namespace being deleted. Pure."""
    defined = {o.metadata.name for o in objects if isinstance(o, Namespace)}
    ending = set(terminating)
    missing: list[str] = []
    for obj in objects:
        namespace = obj.metadata.namespace
        if isinstance(obj, Namespace) or not namespace:
            continue
        if namespace in ending:
            raise NamespaceTerminating(f"{obj.kind.lower()}s \"{obj.metadata.name}\" is forbidden: unable to create "
                                       f"new content in namespace {namespace} because it is being terminated")
        if namespace not in defined and not exists(namespace) and namespace not in missing:
            missing.append(namespace)
    return missing


class Namespaces:
    """Which namespaces are being deleted, and since when."""

    def __init__(self) -> None:
        self.terminating: dict[str, float] = {}

    def on_delete(self, keys: Sequence[Key], *, contents: Callable[[str], list[Key]], now: float
                  ) -> set[Key]:
        """For a deletion of `keys`: the namespace keys kept until their contents are gone (deleted by
        `due_contents` a moment later); a namespace that may not go raises PermissionError."""
        held: set[Key] = set()
        for key in keys:
            kind, _, name = key
            if kind != "Namespace":
                continue
            if name in UNDELETABLE:
                raise PermissionError(f'namespaces "{name}" is forbidden: this namespace may not be deleted')
            if name in self.terminating and not contents(name):
                continue  # empty: it goes now
            self.terminating.setdefault(name, now)
            held.add(key)
        return held

    def due(self, now: float) -> tuple[list[str], float | None]:
        """The terminating namespaces whose content is due to go, and when the next one will be."""
        due = [name for name, since in self.terminating.items() if now >= since + CONTENT_DELAY]
        later = [since + CONTENT_DELAY for since in self.terminating.values() if now < since + CONTENT_DELAY]
        return due, min(later, default=None)

    def forget(self, name: str) -> None:
        self.terminating.pop(name, None)


__all__ = ["BUILTIN", "UNDELETABLE", "NamespaceTerminating", "Namespaces", "missing_namespaces", "namespace_object"]
