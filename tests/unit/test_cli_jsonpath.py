"""`-o jsonpath=` and `-o custom-columns=`: the kubectl template subset scripts rely on."""

from __future__ import annotations

import pytest

from meshd.cli.jsonpath import JsonPathError, custom_column_rows, render_template
from meshd.cli.output import check_format

PODS = {
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {
            "kind": "Pod",
            "metadata": {"name": "web-a", "labels": {"app.kubernetes.io/name": "web"}},
            "status": {
                "podIP": "10.213.0.5",
                "containerStatuses": [{"name": "web", "ready": True, "restartCount": 2}],
            },
        },
        {
            "kind": "Pod",
            "metadata": {"name": "web-b", "labels": {}},
            "status": {
                "podIP": "10.213.0.6",
                "containerStatuses": [{"name": "web", "ready": False, "restartCount": 0}],
            },
        },
    ],
}


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{.items[*].status.podIP}", "10.213.0.5 10.213.0.6"),
        ("{.items[0].metadata.name}", "web-a"),
        ("{.items[-1].metadata.name}", "web-b"),
        ("{.items[0:1].metadata.name}", "web-a"),
        (
            '{range .items[*]}{.metadata.name}{"\\t"}{.status.podIP}{"\\n"}{end}',
            "web-a\t10.213.0.5\nweb-b\t10.213.0.6\n",
        ),
        ("{.items[?(@.status.containerStatuses[0].ready==true)].metadata.name}", "web-a"),
        ('{.items[?(@.metadata.name!="web-a")].metadata.name}', "web-b"),
        ("{.items[?(@.status.containerStatuses[0].restartCount>1)].metadata.name}", "web-a"),
        ("{.items[*].metadata.labels['app.kubernetes.io/name']}", "web"),
        ("{..restartCount}", "2 0"),
        ("{.items[1].status.containerStatuses[0]}", '{"name":"web","ready":false,"restartCount":0}'),
        ("pods: {.items[*].metadata.name}.", "pods: web-a web-b."),
        ("{.kind}", "List"),
        ("{.missing.field}", ""),
        ("{$.items[0].status.containerStatuses[0].ready}", "true"),
    ],
)
def test_jsonpath_templates(template, expected):
    assert render_template(template, PODS) == expected


@pytest.mark.parametrize("template", ["{.items[*]", "{range .items[*]}{.x}", "{end}", "{.items[?(@ ~ 1)]}"])
def test_jsonpath_errors(template):
    with pytest.raises(JsonPathError):
        render_template(template, PODS)


def test_custom_columns():
    rows = custom_column_rows("NAME:.metadata.name,IP:.status.podIP,NODE:.spec.nodeName", PODS["items"])
    assert rows == [
        ["NAME", "IP", "NODE"],
        ["web-a", "10.213.0.5", "<none>"],
        ["web-b", "10.213.0.6", "<none>"],
    ]


@pytest.mark.parametrize(
    "value", ["json", "wide", "jsonpath={.items[*].metadata.name}", "custom-columns=N:.metadata.name"]
)
def test_check_format_accepts(value):
    assert check_format(value) == value


@pytest.mark.parametrize("value", ["xml", "jsonpath=", "jsonpath={.items[", "custom-columns=NAME"])
def test_check_format_rejects(value):
    with pytest.raises(ValueError):
        check_format(value)
