"""Which Ingress path serves a request: a pure decision over the agent's IngressTable.

Kubernetes' precedence: an exact host before a wildcard one (`*.example.com`, one label) before rules without a
host; within a host the longest matching path wins, an Exact path before a Prefix one of the same length; no
match: the defaultBackend, else nothing (404). Prefix matches element-wise (`/foo` matches `/foo`, `/foo/` and
`/foo/bar`, not `/foobar`; a trailing slash in the rule is ignored); ImplementationSpecific is treated as Prefix.
"""

from __future__ import annotations

from meshd.model.ingress import IngressRoute, IngressTable


def _prefix(path: str) -> str:
    return path.rstrip("/")  # "/" -> "": matches every path


def path_matches(route: IngressRoute, path: str) -> bool:
    if route.path_type == "Exact":
        return path == route.path
    prefix = _prefix(route.path)
    return path == prefix or path.startswith(prefix + "/") or not prefix


def _order(route: IngressRoute) -> tuple[int, int]:
    length = len(route.path) if route.path_type == "Exact" else len(_prefix(route.path))
    return (-length, 0 if route.path_type == "Exact" else 1)


def request_path(target: str) -> str:
    """The path of a request target (no query, no fragment); "" -> "/"."""
    for mark in ("?", "#"):
        cut = target.find(mark)
        if cut >= 0:
            target = target[:cut]
    return target or "/"


class IngressRouter:
    """The table compiled for lookups: `decide(host, path)`."""

    def __init__(self, table: IngressTable) -> None:
        self.table = table
        self.exact: dict[str, list[IngressRoute]] = {}
        self.wildcard: dict[str, list[IngressRoute]] = {}  # ".example.com" -> routes of "*.example.com"
        self.any_host: list[IngressRoute] = []
        for route in table.routes:
            host = route.host.lower()
            if not host:
                self.any_host.append(route)
            elif host.startswith("*."):
                self.wildcard.setdefault(host[1:], []).append(route)
            else:
                self.exact.setdefault(host, []).append(route)
        for group in (*self.exact.values(), *self.wildcard.values(), self.any_host):
            group.sort(key=_order)

    def routes_for(self, host: str) -> list[IngressRoute]:
        """Every route a request to `host` may take (the defaultBackend too)."""
        dot = host.find(".")
        found = self.exact.get(host, []) + (self.wildcard.get(host[dot:], []) if dot > 0 else []) + self.any_host
        return found + ([self.table.default] if self.table.default is not None else [])

    def decide(self, host: str, path: str) -> IngressRoute | None:
        """The route for a request to `host` (lower case, no port) and `path` (no query), or None (404)."""
        groups: list[list[IngressRoute]] = []
        exact = self.exact.get(host)
        if exact:
            groups.append(exact)
        dot = host.find(".")
        if dot > 0:
            wild = self.wildcard.get(host[dot:])
            if wild:
                groups.append(wild)
        groups.append(self.any_host)
        for group in groups:
            for route in group:
                if path_matches(route, path):
                    return route
        return self.table.default
