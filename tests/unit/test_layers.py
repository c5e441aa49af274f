"""The layering of the code, checked: lower layers never import higher ones (kopf's import contracts).

model <- external <- store, manifests, registry, driver, probe, volumes <- dns, mdns <- controller <- cluster <- api <- agent <- cli; the sidecar (data
plane) shares only the model and the task supervisor (`meshd.tasks`) with the control plane, so it runs on its
own. `meshd.tasks` and `meshd.logfiles` are the foundation every layer may use.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ALLOWED: dict[str, set[str]] = {
    "meshd.model": {"meshd.model"},
    "meshd.external": {"meshd.model", "meshd.external"},
    "meshd.manifests": {"meshd.model", "meshd.manifests", "meshd.external", "sidecar.config"},
    "meshd.registry": {"meshd.model", "meshd.registry"},
    "meshd.store": {"meshd.model", "meshd.store", "meshd.metrics"},  # metrics: the shared store's reachability
    "meshd.images": {"meshd.images"},
    "meshd.driver": {"meshd.model", "meshd.driver", "meshd.images", "meshd.metrics"},
    "meshd.probe": {"meshd.model", "meshd.probe", "meshd.driver", "meshd.metrics"},
    "meshd.dns": {"meshd.model", "meshd.registry", "meshd.dns", "meshd.metrics"},
    "meshd.mdns": {"meshd.model", "meshd.registry", "meshd.mdns", "meshd.metrics"},
    "meshd.hostnames": {"meshd.model", "meshd.hostnames"},
    "meshd.volumes": {"meshd.model", "meshd.volumes"},
    "meshd.controller": {"meshd.model", "meshd.external", "meshd.manifests", "meshd.registry", "meshd.driver", "meshd.probe",
                         "meshd.controller", "meshd.metrics", "meshd.store", "meshd.volumes", "meshd.scheduler"},
    "meshd.api": {"meshd.model", "meshd.external", "meshd.manifests", "meshd.registry", "meshd.driver", "meshd.controller",
                  "meshd.api", "meshd.metrics", "meshd.state", "meshd.store"},
    "meshd.cluster": {"meshd.model", "meshd.manifests", "meshd.store", "meshd.controller", "meshd.cluster",
                      "meshd.metrics", "meshd.health", "meshd.registry", "meshd.scheduler", "meshd.state"},
    "sidecar": {"meshd.model", "sidecar"},
}


BASE = {"meshd.tasks", "meshd.logfiles"}
for _layer in ALLOWED:
    ALLOWED[_layer] |= BASE
ALLOWED["meshd.api"] |= {"meshd.health", "meshd.cluster"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name.split(".")[0] in ("meshd", "sidecar")}


def package_of(module: str) -> str | None:
    return next((p for p in sorted(ALLOWED, key=len, reverse=True) if module == p or module.startswith(p + ".")),
                None)


def sources() -> list[Path]:
    return sorted(p for top in ("meshd", "sidecar") for p in (ROOT / top).rglob("*.py"))


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_imports_only_what_its_layer_allows(path: Path) -> None:
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    layer = package_of(module)
    if layer is None:
        return  # agent, cli, metrics, state and sidecar_process sit on top
    allowed = ALLOWED[layer]
    wrong = sorted(name for name in imports_of(path) if not any(
        name == a or name.startswith(a + ".") for a in allowed))
    assert not wrong, f"{module} ({layer}) imports {wrong}"
