"""`$(VAR)` in command, args and env values, expanded as the kubelet does (a manifest means the same in both)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshd.model.expansion import expand, expand_container
from meshd.model.objects import Container, EnvVar

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
