"""Property tests: whatever the input, load_documents returns objects or raises ManifestError, nothing else;
whatever it accepts, to_manifest prints a document that loads back to the same object."""

from __future__ import annotations

import copy
import os
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_manifests_helpers import BASES

from meshd.manifests import ManifestError, load_documents, template_hash, to_manifest
from meshd.model.objects import Deployment, ReplicaSet

FUZZ = settings(
    max_examples=int(os.environ.get("MESHD_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

YAML_TOKENS = [
    *"abcdeknmpsv019 :-[]{},&*!|>'\"#%@`?\n\t.=~<\\",
    "\n  ",
    "---\n",
    ": ",
    "- ",
    "<<: ",
    "&a ",
    "*a",
]
YAMLISH = st.lists(st.sampled_from(YAML_TOKENS), max_size=60).map("".join)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        ["", "web", "http", "None", "80", "500m", "64Mi", "Always", "TCP", "/", "25%", "-1", "é"]
    ),
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out.extend(paths_of(child, prefix + (key,)))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out.extend(paths_of(child, prefix + (i,)))
    return out


def assert_only_manifest_error(text: str) -> None:
    try:
        result = load_documents(text, source="fuzz.yaml")
    except ManifestError as exc:
        assert str(exc).startswith("fuzz.yaml")
        return
    for obj in result.objects:
        reloaded = load_documents(yaml.safe_dump(to_manifest(obj)))
        assert reloaded.objects == (obj,)
        if isinstance(obj, (Deployment, ReplicaSet)):
            assert len(template_hash(obj.template)) == 10


@FUZZ
@given(YAMLISH)
def test_random_yamlish_text(text: str) -> None:
    assert_only_manifest_error(text)


@FUZZ
@given(st.text(max_size=80))
def test_random_text(text: str) -> None:
    assert_only_manifest_error(text)


@FUZZ
@given(st.sampled_from(sorted(BASES)), st.data(), values)
def test_one_field_replaced_by_anything(base: str, data: st.DataObject, value: Any) -> None:
    doc = BASES[base]()
    path = data.draw(st.sampled_from(paths_of(doc)[1:]))
    target: Any = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    assert_only_manifest_error(yaml.safe_dump(doc))


@FUZZ
@given(st.sampled_from(sorted(BASES)), st.data(), st.text(max_size=12), values)
def test_one_field_added_anywhere(base: str, data: st.DataObject, key: str, value: Any) -> None:
    doc = BASES[base]()
    candidates = [p for p in paths_of(doc) if isinstance(_at(doc, p), dict)]
    path = data.draw(st.sampled_from(candidates))
    _at(doc, path)[key] = value
    assert_only_manifest_error(yaml.safe_dump(doc))


@FUZZ
@given(st.sampled_from(sorted(BASES)), st.data())
def test_text_cut_anywhere(base: str, data: st.DataObject) -> None:
    text = yaml.safe_dump(BASES[base]())
    cut = data.draw(st.integers(min_value=0, max_value=len(text)))
    assert_only_manifest_error(text[:cut])
    assert_only_manifest_error(text[cut:])


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def test_bases_are_valid_and_round_trip() -> None:
    for make in BASES.values():
        doc = make()
        (obj,) = load_documents(yaml.safe_dump(doc)).objects
        assert obj.raw == doc
        assert load_documents(yaml.safe_dump(to_manifest(obj))).objects == (obj,)
        assert copy.deepcopy(doc) == make()  # loading never mutates the caller's document
