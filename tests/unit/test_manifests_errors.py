"""Every bad manifest is rejected with a message naming the document, the object and the field path."""

from __future__ import annotations

from typing import Any

import pytest
from test_manifests_helpers import DELETE, patched, to_yaml

from meshd.manifests import ManifestError, load_documents

C = "spec.template.spec.containers.0"
P = "spec.template.spec"

# (base, dotted path to patch, new value, expected field path in the message, expected words)
CASES: list[tuple[str, str, Any, str, str]] = [
    # types
    ("deployment", "spec.replicas", "three", "spec.replicas", 'expected an integer, got string "three"'),
    ("deployment", "spec.replicas", True, "spec.replicas", "expected an integer, got boolean"),
    ("deployment", "spec.replicas", 1.5, "spec.replicas", "expected an integer"),
    ("deployment", "spec.replicas", -1, "spec.replicas", "greater than or equal to 0"),
    ("deployment", "spec.replicas", 2**40, "spec.replicas", "less than or equal to"),
    ("deployment", "spec", [1], "spec", "expected a mapping"),
    ("deployment", f"{C}.image", 5, f"{P}.containers[0].image", "expected a string, got integer 5"),
    ("deployment", f"{C}.command", "sleep 1", f"{P}.containers[0].command", "expected a list"),
    ("deployment", f"{C}.args", ["--port", 80], f"{P}.containers[0].args[1]", 'quote it: "80"'),
    (
        "deployment",
        f"{C}.env",
        [{"name": "A", "value": 1}],
        f"{P}.containers[0].env[0].value",
        "expected a string",
    ),
    ("pod", "spec.shareProcessNamespace", "yes", "spec.shareProcessNamespace", "expected true or false"),
    (
        "pod",
        "spec.terminationGracePeriodSeconds",
        "30s",
        "spec.terminationGracePeriodSeconds",
        "expected a number",
    ),
    (
        "pod",
        "spec.terminationGracePeriodSeconds",
        float("nan"),
        "spec.terminationGracePeriodSeconds",
        "expected a number",
    ),
    ("deployment", "metadata.labels", {"app": 1}, "metadata.labels.app", "expected a string"),
    # required fields
    ("deployment", "metadata.name", DELETE, "metadata.name", "required field is missing"),
    ("deployment", "metadata", DELETE, "metadata", "required field is missing"),
    ("deployment", f"{C}.image", DELETE, f"{P}.containers[0].image", "required field is missing"),
    ("deployment", f"{C}.image", "", f"{P}.containers[0].image", "must not be empty"),
    ("deployment", f"{C}.name", DELETE, f"{P}.containers[0].name", "required field is missing"),
    ("deployment", f"{P}.containers", DELETE, f"{P}.containers", "required field is missing"),
    ("deployment", f"{P}.containers", [], f"{P}.containers", "at least one container"),
    ("deployment", "spec.selector", DELETE, "spec.selector", "required field is missing"),
    ("deployment", "spec.selector.matchLabels", {}, "spec.selector.matchLabels", "empty selector"),
    ("deployment", "spec.template", DELETE, "spec.template", "required field is missing"),
    ("deployment", "spec.template.spec", DELETE, "spec.template.spec", "required field is missing"),
    ("replicaset", "spec.selector", DELETE, "spec.selector", "required field is missing"),
    ("pod", "spec", DELETE, "spec", "required field is missing"),
    ("service", "spec.ports.0.port", DELETE, "spec.ports[0].port", "required field is missing"),
    ("service", "spec.ports", [], "spec.ports", "at least one port"),
    ("service", "spec.ports.0.protocol", "SCTP", "spec.ports[0].protocol", 'unsupported value "SCTP"'),
    ("service", "spec.ports.0.appProtocol", 5, "spec.ports[0].appProtocol", "expected a string"),
    (
        "service",
        "metadata.annotations",
        {"meshd.io/opaque-ports": "6379,x"},
        "metadata.annotations[meshd.io/opaque-ports]",
        "not a port or range",
    ),
    # kind and apiVersion
    ("deployment", "kind", "CustomThing", "kind", 'kind "CustomThing" is not supported'),
    ("deployment", "kind", DELETE, "kind", "required field is missing"),
    ("deployment", "apiVersion", "extensions/v1beta1", "apiVersion", "use apiVersion: apps/v1"),
    ("deployment", "apiVersion", DELETE, "apiVersion", "required field is missing"),
    ("pod", "apiVersion", "apps/v1", "apiVersion", "use apiVersion: v1"),
    # names
    ("deployment", "metadata.name", "Web", "metadata.name", 'invalid name "Web"'),
    ("deployment", "metadata.name", "web_1", "metadata.name", "lower case alphanumeric"),
    ("deployment", "metadata.name", "a" * 254, "metadata.name", "no more than 253"),
    ("service", "metadata.name", "1web", "metadata.name", "start with a letter"),
    ("service", "metadata.name", "web.api", "metadata.name", "invalid name"),
    ("deployment", "metadata.namespace", "My-NS", "metadata.namespace", "invalid name"),
    ("deployment", f"{C}.name", "Web", f"{P}.containers[0].name", "invalid name"),
    ("deployment", f"{C}.ports.0.name", "h" * 16, f"{P}.containers[0].ports[0].name", "no more than 15"),
    ("deployment", f"{C}.ports.0.name", "8080", f"{P}.containers[0].ports[0].name", "at least one letter"),
    ("deployment", "metadata.labels", {"bad key!": "x"}, "metadata.labels[bad key!]", "invalid key"),
    ("deployment", "metadata.labels", {"app": "no spaces"}, "metadata.labels.app", "invalid value"),
    ("deployment", "metadata.generateName", "web-", "metadata.generateName", "not supported"),
    ("pod", "spec.hostname", "Host", "spec.hostname", "invalid name"),
    # selectors
    (
        "deployment",
        "spec.template.metadata.labels",
        {"app": "other"},
        "spec.template.metadata.labels",
        "selector does not match template labels",
    ),
    ("replicaset", "spec.template.metadata", DELETE, "spec.template.metadata.labels", "does not match"),
    (
        "deployment",
        "spec.selector.matchExpressions",
        [{"key": "app", "operator": "In", "values": ["web"]}],
        "spec.selector.matchExpressions",
        "not supported",
    ),
    # duplicates
    (
        "deployment",
        f"{P}.containers.1",
        {"name": "web", "image": "x:1"},
        f"{P}.containers[1].name",
        'duplicate container name "web"',
    ),
    (
        "deployment",
        f"{P}.containers.1",
        {"name": "side", "image": "x:1", "ports": [{"containerPort": 80}]},
        f"{P}.containers[1].ports[0].containerPort",
        "duplicate port 80/TCP",
    ),
    (
        "deployment",
        f"{P}.containers.1",
        {"name": "side", "image": "x:1", "ports": [{"containerPort": 81, "name": "http"}]},
        f"{P}.containers[1].ports[0].name",
        'duplicate port name "http"',
    ),
    ("deployment", f"{P}.volumes.1", {"name": "data"}, f"{P}.volumes[1].name", "duplicate volume name"),
    (
        "service",
        "spec.ports",
        [{"name": "a", "port": 80}, {"name": "a", "port": 81}],
        "spec.ports[1].name",
        "duplicate port name",
    ),
    (
        "service",
        "spec.ports",
        [{"name": "a", "port": 80}, {"name": "b", "port": 80}],
        "spec.ports[1].port",
        "duplicate port 80/TCP",
    ),
    (
        "service",
        "spec.ports",
        [{"name": "a", "port": 80}, {"port": 81}],
        "spec.ports[1].name",
        "more than one port",
    ),
    (
        "deployment",
        f"{C}.volumeMounts.1",
        {"name": "data", "mountPath": "/data"},
        f"{P}.containers[0].volumeMounts[1].mountPath",
        "duplicate mount path",
    ),
    # quantities
    (
        "deployment",
        f"{C}.resources",
        {"limits": {"cpu": "lots"}},
        f"{P}.containers[0].resources.limits.cpu",
        "is not a quantity",
    ),
    (
        "deployment",
        f"{C}.resources",
        {"limits": {"memory": "64MB"}},
        f"{P}.containers[0].resources.limits.memory",
        "is not a quantity",
    ),
    (
        "deployment",
        f"{C}.resources",
        {"requests": {"memory": "-1Mi"}},
        f"{P}.containers[0].resources.requests.memory",
        "must not be negative",
    ),
    (
        "deployment",
        f"{C}.resources",
        {"limits": {"cpu": "1"}, "requests": {"cpu": "2"}},
        f"{P}.containers[0].resources.requests.cpu",
        "less than or equal to the cpu limit",
    ),
    (
        "deployment",
        f"{C}.resources",
        {"limits": {"nvidia.com/gpu": 1}},
        f"{P}.containers[0].resources.limits[nvidia.com/gpu]",
        "not supported",
    ),
    # unsupported fields
    (
        "deployment",
        f"{P}.volumes.0",
        {"name": "data", "ephemeral": {"volumeClaimTemplate": {}}},
        f"{P}.volumes[0].ephemeral",
        "not supported",
    ),
    (
        "deployment",
        f"{P}.volumes.0",
        {"name": "data", "configMap": {"name": "Bad_Name"}},
        f"{P}.volumes[0].configMap.name",
        "invalid name",
    ),
    (
        "deployment",
        f"{P}.volumes.0.emptyDir",
        {"medium": "HugePages"},
        f"{P}.volumes[0].emptyDir.medium",
        'unsupported value "HugePages"',
    ),
    (
        "deployment",
        f"{P}.initContainers",
        [{"name": "init", "image": "x", "restartPolicy": "OnFailure"}],
        f"{P}.initContainers[0].restartPolicy",
        'unsupported value "OnFailure"',
    ),
    (
        "deployment",
        f"{P}.initContainers",
        [{"name": "init", "image": "x", "readinessProbe": {"exec": {"command": ["true"]}}}],
        f"{P}.initContainers[0].readinessProbe",
        "may not be set for init containers",
    ),
    (
        "deployment",
        f"{P}.initContainers",
        [{"name": "web", "image": "x"}],
        f"{P}.containers[0].name",
        'duplicate container name "web"',
    ),
    ("deployment", f"{P}.securityContext", {"sysctls": [{"name": "a", "value": "1"}]},
     f"{P}.securityContext.sysctls", "not supported"),
    ("deployment", f"{C}.securityContext", {"runAsUser": -1}, f"{P}.containers[0].securityContext.runAsUser",
     "greater than or equal to 0"),
    ("deployment", f"{C}.securityContext", {"seccompProfile": {"type": "Unconfined"}},
     f"{P}.containers[0].securityContext.seccompProfile.type", 'unsupported value "Unconfined"'),
    (
        "deployment",
        f"{C}.env",
        [{"name": "A", "valueFrom": {"fieldRef": {}}}],
        f"{P}.containers[0].env[0].valueFrom.fieldRef.fieldPath",
        "required field is missing",
    ),
    (
        "deployment",
        f"{C}.env",
        [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "a/b"}}}],
        f"{P}.containers[0].env[0].valueFrom.secretKeyRef.key",
        "invalid key",
    ),
    (
        "deployment",
        f"{C}.env",
        [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}}],
        f"{P}.containers[0].env[0].valueFrom.fieldRef.fieldPath",
        'unsupported value "status.phase"',
    ),
    (
        "deployment",
        f"{C}.env",
        [{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        f"{P}.containers[0].env[0].valueFrom",
        "may not be specified when `value` is not empty",
    ),
    (
        "deployment",
        f"{C}.env",
        [{"name": "A", "valueFrom": {}}],
        f"{P}.containers[0].env[0].valueFrom",
        "exactly one of fieldRef, resourceFieldRef, configMapKeyRef or secretKeyRef",
    ),
    (
        "deployment",
        f"{C}.env",
        [{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}],
        f"{P}.containers[0].env[0].valueFrom.resourceFieldRef.resource",
        'unsupported value "limits.gpu"',
    ),
    (
        "deployment",
        f"{C}.env",
        [{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "lots"}}}],
        f"{P}.containers[0].env[0].valueFrom.resourceFieldRef.divisor",
        "",
    ),
    (
        "deployment",
        f"{C}.env",
        [{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "containerName": "nope"}}}],
        f"{P}.containers[0].env[0].valueFrom.resourceFieldRef.containerName",
        'no container "nope" in this pod',
    ),
    (
        "deployment",
        f"{C}.envFrom",
        [{"configMapRef": {"name": "x"}, "secretRef": {"name": "y"}}],
        f"{P}.containers[0].envFrom[0]",
        "exactly one of configMapRef or secretRef",
    ),
    (
        "deployment",
        f"{C}.livenessProbe",
        {"grpc": {"port": "grpc"}},
        f"{P}.containers[0].livenessProbe.grpc.port",
        "a grpc probe takes no port name",
    ),
    (
        "deployment",
        f"{C}.livenessProbe",
        {"grpc": {"port": 9000, "host": "x"}},
        f"{P}.containers[0].livenessProbe.grpc.host",
        "unknown field",
    ),
    ("deployment", f"{C}.ports.0.hostPort", 0, f"{P}.containers[0].ports[0].hostPort", "greater than or equal to 1"),
    ("deployment", f"{C}.ports.0.hostIP", "1.2.3.4", f"{P}.containers[0].ports[0].hostIP", "only be set with hostPort"),
    (
        "deployment",
        f"{C}.ports.0.protocol",
        "SCTP",
        f"{P}.containers[0].ports[0].protocol",
        "unsupported value",
    ),
    (
        "deployment",
        f"{C}.volumeMounts.0.subPath",
        "x",
        f"{P}.containers[0].volumeMounts[0].subPath",
        "not supported",
    ),
    (
        "deployment",
        f"{C}.lifecycle",
        {"postStart": {"exec": {"command": ["x"]}}},
        f"{P}.containers[0].lifecycle.postStart",
        "not supported",
    ),
    (
        "deployment",
        f"{C}.lifecycle",
        {"preStop": {"httpGet": {"port": 80}}},
        f"{P}.containers[0].lifecycle.preStop.httpGet",
        "not supported",
    ),
    ("service", "spec.type", "ExternalName", "spec.externalName", "required when `type` is 'ExternalName'"),
    ("service", "spec.externalName", "Example_com", "spec.externalName", 'invalid name "Example_com"'),
    ("service", "spec.externalName", "a..b.", "spec.externalName", "lower case alphanumeric"),
    # unknown fields
    ("deployment", f"{C}.imagee", "x", f"{P}.containers[0].imagee", "unknown field (did you mean image?)"),
    ("deployment", "spec.replica", 3, "spec.replica", "unknown field (did you mean replicas?)"),
    ("deployment", "spec.template.spec.foo", 1, "spec.template.spec.foo", "unknown field"),
    ("deployment", "bogus", 1, "bogus", "unknown field"),
    ("service", "spec.ports.0.targetport", 80, "spec.ports[0].targetport", "did you mean targetPort?"),
    # probes
    (
        "deployment",
        f"{C}.readinessProbe",
        {"periodSeconds": 1},
        f"{P}.containers[0].readinessProbe",
        "needs one handler",
    ),
    (
        "deployment",
        f"{C}.readinessProbe",
        {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}},
        f"{P}.containers[0].readinessProbe.exec",
        "only one handler",
    ),
    (
        "deployment",
        f"{C}.readinessProbe.periodSeconds",
        0.01,
        f"{P}.containers[0].readinessProbe.periodSeconds",
        "at least 0.05",
    ),
    (
        "deployment",
        f"{C}.readinessProbe.timeoutSeconds",
        -1,
        f"{P}.containers[0].readinessProbe.timeoutSeconds",
        "greater than or equal to 0",
    ),
    (
        "deployment",
        f"{C}.livenessProbe",
        {"tcpSocket": {"port": 80}, "successThreshold": 2},
        f"{P}.containers[0].livenessProbe.successThreshold",
        "must be 1",
    ),
    (
        "deployment",
        f"{C}.readinessProbe.httpGet.port",
        "metrics",
        f"{P}.containers[0].readinessProbe.httpGet.port",
        "names no port",
    ),
    (
        "deployment",
        f"{C}.readinessProbe.httpGet.port",
        70000,
        f"{P}.containers[0].readinessProbe.httpGet.port",
        "less than or equal to 65535",
    ),
    (
        "deployment",
        f"{C}.readinessProbe.httpGet.port",
        DELETE,
        f"{P}.containers[0].readinessProbe.httpGet.port",
        "required field is missing",
    ),
    (
        "deployment",
        f"{C}.readinessProbe.httpGet.scheme",
        "FTP",
        f"{P}.containers[0].readinessProbe.httpGet.scheme",
        "unsupported value",
    ),
    (
        "deployment",
        f"{C}.readinessProbe.httpGet.path",
        "health",
        f"{P}.containers[0].readinessProbe.httpGet.path",
        'must start with "/"',
    ),
    (
        "deployment",
        f"{C}.startupProbe",
        {"exec": {"command": []}},
        f"{P}.containers[0].startupProbe.exec.command",
        "required field is missing",
    ),
    (
        "deployment",
        f"{C}.lifecycle",
        {"preStop": {"sleep": {}}},
        f"{P}.containers[0].lifecycle.preStop.sleep.seconds",
        "required field is missing",
    ),
    # pod spec rules
    (
        "deployment",
        f"{P}.restartPolicy",
        "Never",
        f"{P}.restartPolicy",
        'unsupported value "Never" (supported: Always)',
    ),
    ("replicaset", f"{P}.restartPolicy", "OnFailure", f"{P}.restartPolicy", "supported: Always"),
    ("pod", "spec.restartPolicy", "Sometimes", "spec.restartPolicy", "unsupported value"),
    (
        "deployment",
        f"{C}.imagePullPolicy",
        "Maybe",
        f"{P}.containers[0].imagePullPolicy",
        "unsupported value",
    ),
    (
        "deployment",
        f"{C}.volumeMounts.0.name",
        "cache",
        f"{P}.containers[0].volumeMounts[0].name",
        'no volume named "cache"',
    ),
    (
        "deployment",
        f"{C}.volumeMounts.0.mountPath",
        "data",
        f"{P}.containers[0].volumeMounts[0].mountPath",
        "absolute path",
    ),
    ("deployment", f"{C}.image", "nginx 1.25", f"{P}.containers[0].image", "must not contain spaces"),
    # strategy
    ("deployment", "spec.strategy", {"type": "BlueGreen"}, "spec.strategy.type", "unsupported value"),
    (
        "deployment",
        "spec.strategy",
        {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}},
        "spec.strategy.rollingUpdate",
        "Recreate",
    ),
    (
        "deployment",
        "spec.strategy",
        {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}},
        "spec.strategy.rollingUpdate.maxUnavailable",
        "may not be 0 when maxSurge is 0",
    ),
    (
        "deployment",
        "spec.strategy",
        {"rollingUpdate": {"maxSurge": "lots"}},
        "spec.strategy.rollingUpdate.maxSurge",
        "percentage",
    ),
    (
        "deployment",
        "spec.strategy",
        {"rollingUpdate": {"maxUnavailable": "150%"}},
        "spec.strategy.rollingUpdate.maxUnavailable",
        "greater than 100%",
    ),
    (
        "deployment",
        "spec.strategy",
        {"rollingUpdate": {"maxSurge": -1}},
        "spec.strategy.rollingUpdate.maxSurge",
        "greater than or equal to 0",
    ),
    ("deployment", "spec.progressDeadlineSeconds", 5, "spec.progressDeadlineSeconds", None),
    (
        "deployment",
        "spec.revisionHistoryLimit",
        -1,
        "spec.revisionHistoryLimit",
        "greater than or equal to 0",
    ),
    # services
    ("service", "spec.clusterIP", "10.0.0.300", "spec.clusterIP", "IPv4 address"),
    ("service", "spec.trafficDistribution", "PreferSameZone", "spec.trafficDistribution", "supported: PreferClose"),
    ("service", "spec.trafficDistribution", 1, "spec.trafficDistribution", "expected a string"),
    ("service", "spec.ports.0.targetPort", "8080", "spec.ports[0].targetPort", "at least one letter"),
    ("service", "spec.ports.0.targetPort", 0, "spec.ports[0].targetPort", "greater than or equal to 1"),
    ("service", "spec.ports.0.port", "80", "spec.ports[0].port", "expected an integer"),
    ("service", "spec.selector", ["app=web"], "spec.selector", "expected a mapping"),
    (
        "service",
        "metadata.annotations",
        {"meshd.io/lb-algorithm": "fastest"},
        "metadata.annotations[meshd.io/lb-algorithm]",
        "unknown algorithm",
    ),
    (
        "service",
        "metadata.annotations",
        {"meshd.io/retries": "-1"},
        "metadata.annotations[meshd.io/retries]",
        "non-negative",
    ),
]


def case_id(case: tuple[Any, ...]) -> str:
    """The same in every process (pytest-xdist's workers must collect one list): DELETE by name, not address."""
    value = "DELETE" if case[2] is DELETE else repr(case[2])
    return f"{case[0]}:{case[1]}={value}"[:80]


@pytest.mark.parametrize(
    ("base", "path", "value", "field", "words"), CASES, ids=[case_id(c) for c in CASES]
)
def test_error_names_document_and_field_path(
    base: str, path: str, value: Any, field: str, words: str | None
) -> None:
    doc = patched(base, path, value)
    if base == "deployment" and path == "spec.progressDeadlineSeconds":
        doc["spec"]["minReadySeconds"] = 10
        words = "greater than minReadySeconds"
    text = to_yaml(patched("service", "", None), doc)  # the bad one is document 2
    with pytest.raises(ManifestError) as info:
        load_documents(text, source="deploy.yaml")
    message = str(info.value)
    assert message.startswith("deploy.yaml: document 2"), message
    assert f": {field}: " in message, message
    assert info.value.field_path == field
    if words:
        assert words in message, message
    assert "(line " in message  # and where to look in the file


def test_message_names_kind_and_object_name() -> None:
    doc = patched("deployment", "spec.template.spec.volumes.0", {"name": "data", "ephemeral": {}})
    with pytest.raises(ManifestError) as info:
        load_documents(to_yaml(patched("pod", "", None), doc), source="deploy.yaml")
    assert str(info.value).startswith(
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.volumes[0].ephemeral: not supported"
    )
    assert isinstance(info.value, ValueError)
    assert (info.value.kind, info.value.name, info.value.document) == ("Deployment", "web", 2)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: a\n", "line 4, column 1"),
        ("a: b: c\n", "YAML syntax error at line 1, column 5: mapping values are not allowed here"),
        ("kind: Pod\nkind: Service\n", "kind: duplicate key 'kind' (line 2)"),
        ("x: &a [*a]\n", "recursive YAML alias"),
        ("a: !!binary aGk=\n", "unsupported YAML tag"),
        ("a: !Ref x\n", "unsupported YAML tag !Ref"),
        ("\x07", "character 0x0007 is not allowed"),
        ("[" * 3000 + "]" * 3000, "nesting is too deep"),
        ("- 1\n- 2\n", "expected a mapping, got a list"),
        ("hello\n", 'expected a mapping, got string "hello"'),
        ("? [a]\n: 1\n", "a mapping key must be a string"),
    ],
)
def test_yaml_problems(text: str, words: str) -> None:
    with pytest.raises(ManifestError) as info:
        load_documents(text, source="bad.yaml")
    assert words in str(info.value)
    assert str(info.value).startswith("bad.yaml:")


def test_yaml_error_names_the_document() -> None:
    text = to_yaml(patched("pod", "", None)) + "---\nkind: [\n"
    with pytest.raises(
        ManifestError, match=r"^x.yaml: document 2: YAML syntax error at line \d+, column \d+"
    ):
        load_documents(text, source="x.yaml")


def test_billion_laughs_fails_cleanly() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    with pytest.raises(ManifestError, match="document too large"):
        load_documents("\n".join(lines) + "\n")


def test_list_item_errors_name_the_item() -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [patched("pod", "", None), patched("pod", "spec.foo", 1)],
    }
    with pytest.raises(ManifestError) as info:
        load_documents(to_yaml(doc), source="list.yaml")
    assert str(info.value).startswith("list.yaml: document 1 item 1 (Pod one): spec.foo: unknown field")
    assert "(line " in str(info.value)


def test_list_in_list_is_rejected() -> None:
    doc = {"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "List", "items": []}]}
    with pytest.raises(ManifestError, match="item 0.*kind: a List may not contain another List"):
        load_documents(to_yaml(doc))


def test_line_points_at_the_field() -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers:\n  - name: c\n    image: 5\n"
    )
    with pytest.raises(ManifestError) as info:
        load_documents(text)
    assert info.value.line == 8


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("yes", 'boolean true (quote it: "yes")'),
        ("0x1F", 'integer 31 (quote it: "0x1F")'),
        ("1.10", 'number 1.1 (quote it: "1.10")'),
    ],
)
def test_unquoted_scalars_are_shown_as_written(written: str, shown: str) -> None:
    text = f"apiVersion: v1\nkind: Pod\nmetadata: {{name: a}}\nspec:\n  containers:\n  - name: c\n    image: x\n    env: [{{name: A, value: {written}}}]\n"
    with pytest.raises(ManifestError) as info:
        load_documents(text)
    assert f"spec.containers[0].env[0].value: expected a string, got {shown}" in str(info.value)
