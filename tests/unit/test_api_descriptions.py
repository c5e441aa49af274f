"""meshd's `kubectl explain` texts (meshd.api.descriptions) name real types and fields, and reach the OpenAPI
documents in the shape each version reads (v3: a described reference wrapped in allOf)."""

from __future__ import annotations

import pytest

from meshd.api import descriptions, openapi

V2, V3 = "#/definitions/", "#/components/schemas/"


@pytest.mark.parametrize("name", sorted({*descriptions.TYPES, *descriptions.FIELDS}))
def test_every_described_type_and_field_exists(name: str) -> None:
    assert name in openapi.TYPES
    fields = openapi.TYPES[name][2]
    assert set(descriptions.FIELDS.get(name, {})) <= set(fields), set(descriptions.FIELDS[name]) - set(fields)


def test_the_texts_are_sentences() -> None:
    texts = [*descriptions.TYPES.values(), *descriptions.OBJECT_FIELDS.values(),
             *(text for fields in descriptions.FIELDS.values() for text in fields.values())]
    assert all(text[0].isupper() and text.endswith(".") and "  " not in text for text in texts)


@pytest.mark.parametrize(("prefix", "wrapped"), [(V2, False), (V3, True)])
def test_the_documents_carry_them(prefix: str, wrapped: bool) -> None:
    schemas = openapi.definitions(prefix)
    spec = schemas["io.k8s.api.apps.v1.DeploymentSpec"]
    assert spec["description"] == descriptions.TYPES["DeploymentSpec"]
    assert spec["properties"]["replicas"] == {"type": "integer", "format": "int64",
                                              "description": descriptions.FIELDS["DeploymentSpec"]["replicas"]}
    template = spec["properties"]["template"]
    ref = {"$ref": prefix + "io.k8s.api.core.v1.PodTemplateSpec"}
    assert template == ({"allOf": [ref]} if wrapped else ref) | {
        "description": descriptions.FIELDS["DeploymentSpec"]["template"]}
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["items"] == {"$ref": prefix + "io.k8s.api.core.v1.Container"}  # a list: described around it
    pod = schemas["io.k8s.api.core.v1.Pod"]["properties"]
    assert pod["kind"]["description"] == "The type of this object: Pod."
    assert "description" not in schemas["io.k8s.api.core.v1.PodStatus"]["properties"]["phase"]  # not described: bare
