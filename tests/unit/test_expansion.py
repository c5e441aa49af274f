"""`$(VAR)` in command, args and env values, expanded as the kubelet does (a manifest means the same in both)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshd.model.expansion import PodFacts, expand, expand_container, field_value, resolve_env, resource_value
from meshd.model.objects import Container, EnvVar, ResourceFieldRef, ResourceList, Resources

VARS = {"A": "alpha", "PORT": "8080", "EMPTY": ""}


@pytest.mark.parametrize(("text", "expanded"), [
    ("$(A)", "alpha"),
    ("--port=$(PORT)", "--port=8080"),
    ("$(A)$(PORT)", "alpha8080"),
    ("$(EMPTY)x", "x"),
    ("$(NOPE)", "$(NOPE)"),  # undefined: kept as written
    ("$$(A)", "$(A)"),  # escaped
    ("$$$(A)", "$alpha"),
    ("$$", "$"),
    ("$A ${A} $", "$A ${A} $"),  # only $( ) is a reference
    ("$(A", "$(A"),  # unclosed
    ("$()", "$()"),
    ("no refs", "no refs"),
])
def test_expand(text, expanded):
    assert expand(text, VARS) == expanded


@given(st.text(alphabet=st.characters(blacklist_characters="$")))
def test_text_without_a_dollar_is_unchanged(text):
    assert expand(text, VARS) == text


def test_env_sees_the_variables_before_it_and_command_and_args_see_all():
    container = Container(
        name="c", image="i",
        command=("serve", "--greeting=$(GREETING)"),
        args=("$(BOTH)", "$(LATER)", "$$(GREETING)"),
        env=(EnvVar("BOTH", "$(GREETING)-world"), EnvVar("GREETING", "hello"),
             EnvVar("LATER", "$(GREETING)-again"), EnvVar("AT", "$(POD_IP)")),
    )
    command, args, env = expand_container(container, {"POD_IP": "127.0.0.5"})
    assert command == ("serve", "--greeting=hello")
    assert args == ("$(GREETING)-world", "hello-again", "$(GREETING)")
    assert [(e.name, e.value) for e in env] == [
        ("BOTH", "$(GREETING)-world"), ("GREETING", "hello"), ("LATER", "hello-again"), ("AT", "127.0.0.5")]


FACTS = PodFacts(name="web-1", namespace="shop", uid="shop-web-1", node_name="vm", pod_ip="10.213.0.7",
                 labels={"app": "web"}, annotations={"team": "a"}, node_cpu_millicores=2000,
                 node_memory_bytes=8 * 2**30)


@pytest.mark.parametrize(("path", "value"), [
    ("metadata.name", "web-1"), ("metadata.namespace", "shop"), ("metadata.uid", "shop-web-1"),
    ("metadata.labels['app']", "web"), ("metadata.labels['nope']", ""), ("metadata.annotations['team']", "a"),
    ("spec.nodeName", "vm"), ("spec.serviceAccountName", "default"),
    ("status.podIP", "10.213.0.7"), ("status.podIPs", "10.213.0.7"), ("status.hostIP", "127.0.0.1"),
])
def test_field_refs(path, value):
    assert field_value(path, FACTS) == value


LIMITED = Container(name="c", image="i", resources=Resources(
    limits=ResourceList(cpu_millicores=500, memory_bytes=64 * 2**20),
    requests=ResourceList(cpu_millicores=250, memory_bytes=32 * 2**20)))


@pytest.mark.parametrize(("ref", "container", "value"), [
    (ResourceFieldRef("limits.cpu", divisor=1000), LIMITED, "1"),  # 0.5 core in cores ("1"), rounded up
    (ResourceFieldRef("limits.cpu", divisor=1), LIMITED, "500"),  # divisor 1m
    (ResourceFieldRef("requests.cpu", divisor=1), LIMITED, "250"),
    (ResourceFieldRef("limits.memory"), LIMITED, str(64 * 2**20)),
    (ResourceFieldRef("limits.memory", divisor=2**20), LIMITED, "64"),
    (ResourceFieldRef("requests.memory", divisor=2**20), LIMITED, "32"),
    (ResourceFieldRef("limits.cpu", divisor=1000), Container(name="c", image="i"), "2"),  # the node's
    (ResourceFieldRef("limits.memory", divisor=2**30), Container(name="c", image="i"), "8"),
    (ResourceFieldRef("requests.cpu", divisor=1), Container(name="c", image="i"), "0"),
])
def test_resource_refs(ref, container, value):
    assert resource_value(ref, container, FACTS) == value


def test_resolve_env_fills_value_from_and_keeps_the_rest():
    main = Container(name="main", image="i", env=(
        EnvVar("PLAIN", "x"), EnvVar("POD", field_path="metadata.name"),
        EnvVar("SIDE_MEM", resource_field=ResourceFieldRef("limits.memory", "side", 2**20)),
        EnvVar("URL", "http://$(POD):80"),
    ))
    side = replace(LIMITED, name="side")
    resolved = resolve_env(main, [main, side], FACTS)
    assert [(e.name, e.value) for e in resolved.env] == [
        ("PLAIN", "x"), ("POD", "web-1"), ("SIDE_MEM", "64"), ("URL", "http://$(POD):80")]
    assert expand_container(resolved)[2][-1].value == "http://web-1:80"  # then $(VAR) sees it
    assert resolve_env(side, [main, side], FACTS) is side  # nothing to resolve: unchanged
