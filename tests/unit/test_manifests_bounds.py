"""Bounded input: an object over 1.5 MiB after YAML aliases, or a "billion laughs", is refused, never built."""

from __future__ import annotations

import pytest

from meshd.manifests import ManifestError, load_documents
from meshd.manifests.yamldocs import MAX_OBJECT_BYTES, parse_documents


def billion_laughs(levels: int = 12) -> str:
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: lol}", 'x0: &a0 "' + "lol" * 100 + '"']
    lines += [f"x{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join([*lines, f"data: {{k: *a{levels - 1}}}"])


def test_a_billion_laughs_is_refused_by_its_expanded_size():
    with pytest.raises(ManifestError, match="after YAML aliases are expanded"):
        parse_documents(billion_laughs(), source="lol.yaml")


def test_an_object_over_one_and_a_half_mib_is_refused_but_a_list_of_smaller_ones_is_not():
    big = "x" * (MAX_OBJECT_BYTES + 10)
    with pytest.raises(ManifestError, match=r"object too large: \d+ bytes .*\(1.5 MiB\)"):
        parse_documents(f"kind: Service\nmetadata: {{name: x}}\nspec: {{a: '{big}'}}\n", source="big.yaml")
    half = "x" * (MAX_OBJECT_BYTES // 2)
    items = "".join(f"- {{kind: ConfigMap, metadata: {{name: c{i}}}, data: {{a: '{half}'}}}}\n" for i in range(3))
    (document,) = parse_documents(f"apiVersion: v1\nkind: List\nitems:\n{items}", source="list.yaml")
    assert len(document.data["items"]) == 3


@pytest.mark.parametrize("replicas", ["3000000000000", "2147483648", "-1"])
def test_replicas_stay_within_int32(replicas):
    text = f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: busybox}}]}}
"""
    with pytest.raises(ManifestError, match=r"spec\.replicas"):
        load_documents(text, source="web.yaml")
