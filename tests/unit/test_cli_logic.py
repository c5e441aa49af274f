"""The CLI's pure pieces: rollout status, history, addresses, kinds, -f inputs, endpoint watch view, top, layout."""

from __future__ import annotations

import pytest

from meshd.cli.client import error_message, resolve_api_url
from meshd.cli.cmd_change import default_container
from meshd.cli.common import parse_duration
from meshd.cli.endpoints_view import EndpointsView
from meshd.cli.files import InputError, expand_sources, read_manifests
from meshd.cli.kinds import DEPLOYMENT, ENDPOINTS, POD, REPLICASET, SERVICE, UnknownKind, resolve_kind
from meshd.cli.rollout import format_history, history_revisions, rollout_status
from meshd.cli.tabwriter import TableWriter, tabwrite
from meshd.cli.timefmt import human_duration
from meshd.cli.top import top_pods
from meshd.model.endpoints import (
    Add,
    DoesNotExist,
    Endpoint,
    PortInfo,
    Remove,
    Reset,
    ServiceInfo,
    ServiceKey,
)


def dep(*, generation=3, observed=3, replicas=3, updated=3, total=3, available=3, conditions=()):
    return {
        "metadata": {"name": "web", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "conditions": list(conditions),
        },
    }


DEADLINE = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}


@pytest.mark.parametrize(
    "obj, message, done, failed",
    [
        (dep(), 'deployment "web" successfully rolled out', True, False),
        (dep(generation=4), "Waiting for deployment spec update to be observed...", False, False),
        (
            dep(updated=1, total=4),
            'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...',
            False,
            False,
        ),
        (
            dep(total=4),
            'Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...',
            False,
            False,
        ),
        (
            dep(available=2),
            'Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available...',
            False,
            False,
        ),
        (
            dep(updated=1, total=4, conditions=[DEADLINE]),
            'deployment "web" exceeded its progress deadline',
            False,
            True,
        ),
        (
            dep(replicas=0, updated=0, total=0, available=0),
            'deployment "web" successfully rolled out',
            True,
            False,
        ),
    ],
)
def test_rollout_status(obj, message, done, failed):
    status = rollout_status(obj)
    assert (status.message, status.done, status.failed) == (message, done, failed)


def test_history_from_revisions_or_replicasets():
    answer = {"revisions": [{"revision": 2, "changeCause": "image v2"}, {"revision": 1}]}
    assert [r.revision for r in history_revisions(answer)] == [1, 2]
    rs_list = {
        "kind": "List",
        "items": [
            {
                "metadata": {"name": "web-b", "annotations": {"deployment.kubernetes.io/revision": "3"}},
                "spec": {"template": {"x": 1}},
            },
            {
                "metadata": {
                    "name": "web-a",
                    "annotations": {
                        "deployment.kubernetes.io/revision": "1",
                        "kubernetes.io/change-cause": "first",
                    },
                }
            },
        ],
    }
    revisions = history_revisions(rs_list)
    assert [(r.revision, r.change_cause) for r in revisions] == [(1, "first"), (3, "")]
    assert revisions[1].template == {"x": 1}
    assert format_history("deployment.apps/web", revisions).splitlines() == [
        "deployment.apps/web ",
        "REVISION   CHANGE-CAUSE",
        "1          first",
        "3          <none>",
    ]


@pytest.mark.parametrize(
    "value, env, expected",
    [
        (None, {}, "http://127.0.0.1:7700"),
        (None, {"MESHD_API": "127.0.0.1:7701"}, "http://127.0.0.1:7701"),
        (None, {"MESHD_API": "http://localhost:9000/"}, "http://localhost:9000"),
        ("10.0.0.2:7700", {"MESHD_API": "127.0.0.1:1"}, "http://10.0.0.2:7700"),
        ("example", {}, "http://example:7700"),
        ("[::1]:7700", {}, "http://[::1]:7700"),
    ],
)
def test_resolve_api_url(value, env, expected):
    assert resolve_api_url(value, env) == expected


@pytest.mark.parametrize("bad", ["https://x:1", "http://:7700", "host:notaport"])
def test_resolve_api_url_rejects(bad):
    with pytest.raises(ValueError):
        resolve_api_url(bad, {})


@pytest.mark.parametrize(
    "body, expected",
    [
        (
            b'{"error": "document 2 (Deployment web): spec.replicas: expected an integer"}',
            "document 2 (Deployment web): spec.replicas: expected an integer",
        ),
        (b'{"kind": "Status", "message": "pods \\"x\\" not found", "code": 404}', 'pods "x" not found'),
        (b"plain text\n", "plain text"),
        (b"", "HTTP 500 Internal Server Error"),
    ],
)
def test_error_message(body, expected):
    assert error_message(500, "Internal Server Error", body) == expected


@pytest.mark.parametrize(
    "text, kind",
    [
        ("po", POD),
        ("pods", POD),
        ("Pod", POD),
        ("deploy", DEPLOYMENT),
        ("deployments.apps", DEPLOYMENT),
        ("rs", REPLICASET),
        ("svc", SERVICE),
        ("ep", ENDPOINTS),
        ("endpoints", ENDPOINTS),
    ],
)
def test_resolve_kind(text, kind):
    assert resolve_kind(text) is kind


def test_kind_paths():
    assert DEPLOYMENT.object_path("default", "web") == "/apis/apps/v1/namespaces/default/deployments/web"
    assert POD.collection_path(None) == "/api/v1/pods"
    assert DEPLOYMENT.display == "deployment.apps" and POD.display == "pod"
    with pytest.raises(UnknownKind):
        resolve_kind("cronjobs.batch.example")


@pytest.mark.parametrize(
    "text, seconds", [("0", 0), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("500ms", 0.5), ("2.5", 2.5)]
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_inputs_directories_and_stdin(tmp_path):
    (tmp_path / "b.yaml").write_text("kind: Service\n")
    (tmp_path / "a.yml").write_text("---\nkind: Pod")
    (tmp_path / "c.json").write_text('{"kind": "Deployment"}\n')
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.yaml").write_text("kind: ReplicaSet\n")
    files = expand_sources([str(tmp_path), "-"])
    assert [f.rsplit("/", 1)[-1] for f in files] == ["a.yml", "b.yaml", "c.json", "-"]
    assert len(expand_sources([str(tmp_path)], recursive=True)) == 4
    pairs = read_manifests([str(tmp_path), "-"], read_stdin=lambda: "kind: Pod\nmetadata: {name: x}\n")
    assert [(text, source.rsplit("/", 1)[-1]) for text, source in pairs] == [
        ("---\nkind: Pod", "a.yml"),
        ("kind: Service\n", "b.yaml"),
        ('{"kind": "Deployment"}\n', "c.json"),
        ("kind: Pod\nmetadata: {name: x}\n", "<stdin>"),
    ]


def test_inputs_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        expand_sources([str(tmp_path / "missing.yaml")])
    with pytest.raises(InputError):
        expand_sources([str(tmp_path)])  # an empty directory
    with pytest.raises(InputError):
        read_manifests(["-"], read_stdin=lambda: "  \n")
    assert issubclass(InputError, OSError)  # `meshd up` handles it with the agent's other file errors


def test_endpoints_view_builds_v1_endpoints():
    key = ServiceKey("default", "web")
    svc = ServiceInfo(key, "10.213.128.7", (PortInfo("http", 80, 8080),))
    view = EndpointsView()
    assert view.apply(Reset(svc, (Endpoint("web-a", "10.213.0.5", {"http": 8080}),))) == key
    assert (
        view.apply(Add(key, (Endpoint("web-b", "10.213.0.6", {"http": 8080}, ready=False, reason="probe"),)))
        == key
    )
    obj = view.object(key, created="2026-11-24T10:00:00Z")
    assert obj == {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-11-24T10:00:00Z"},
        "subsets": [
            {
                "addresses": [
                    {
                        "ip": "10.213.0.5",
                        "targetRef": {"kind": "Pod", "name": "web-a", "namespace": "default"},
                    }
                ],
                "notReadyAddresses": [
                    {
                        "ip": "10.213.0.6",
                        "targetRef": {"kind": "Pod", "name": "web-b", "namespace": "default"},
                    }
                ],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            }
        ],
    }
    assert view.apply(Remove(key, ("web-a", "web-b"))) == key
    assert "subsets" not in view.object(key)
    assert view.apply(Add(ServiceKey("default", "unknown"), ())) is None
    assert view.apply(DoesNotExist(key)) == key
    assert view.object(key) is None


def test_top_pods():
    items = [
        {
            "metadata": {"name": "web-a", "namespace": "default"},
            "containers": [
                {"name": "web", "usage": {"cpu": "1500000n", "memory": "34Mi"}},
                {"name": "loader", "usage": {"cpu": "10m", "memory": "2048Ki"}},
            ],
        },
        {
            "metadata": {"name": "web-b", "namespace": "default"},
            "containers": [{"name": "web", "usage": {"cpu": "120m", "memory": "10Mi"}}],
        },
    ]
    assert top_pods(items, sort_by="cpu").splitlines() == [
        "NAME    CPU(cores)   MEMORY(bytes)",
        "web-b   120m         10Mi",
        "web-a   12m          36Mi",
    ]
    assert top_pods(items, containers=True).splitlines()[2].split() == ["web-a", "loader", "10m", "2Mi"]


def test_tabwriter_blocks_like_go():
    text = "Name:\tweb\nNamespace:\tdefault\nContainers:\n  web:\n    Image:\tnginx\n    Ready:\tTrue"
    assert tabwrite(text, minwidth=0, padding=2).splitlines() == [
        "Name:       web",
        "Namespace:  default",
        "Containers:",
        "  web:",
        "    Image:  nginx",
        "    Ready:  True",
    ]


def test_table_writer_remembers_widths_for_watch():
    writer = TableWriter()
    first = writer.render([["NAME", "READY", "AGE"], ["web-1", "1/1", "5s"]])
    later = writer.render([["w", "0/1", "6s"]])
    assert first.splitlines()[1].index("1/1") == later.index("0/1")


@pytest.mark.parametrize(
    "seconds, text",
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (59, "59s"),
        (119, "119s"),
        (125, "2m5s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600 + 60, "3h1m"),
        (8 * 3600, "8h"),
        (50 * 3600, "2d2h"),
        (9 * 86400, "9d"),
        (800 * 86400, "2y70d"),
        (3000 * 86400, "8y"),
    ],
)
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def _pod(names, annotations=None):
    return {"metadata": {"annotations": annotations or {}}, "spec": {"containers": [{"name": n} for n in names]}}


@pytest.mark.parametrize(("pod", "chosen", "note"), [
    (_pod(["web"]), None, ""),  # one container: nothing to choose, nothing to say
    (_pod(["server", "loader"]), "server", 'Defaulted container "server" out of: server, loader'),
    (_pod(["server", "loader"], {"kubectl.kubernetes.io/default-container": "loader"}), "loader",
     'Defaulted container "loader" out of: server, loader'),
    (_pod(["server", "loader"], {"kubectl.kubernetes.io/default-container": "nope"}), "server",
     'Defaulted container "server" out of: server, loader'),
    ({}, None, ""),
])
def test_logs_default_container_as_kubectl(pod, chosen, note):
    assert default_container(pod) == (chosen, note)
