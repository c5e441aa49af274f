"""Kubernetes' `$(VAR)` references in a container's command, args and env values (pure).

As the kubelet does: `$(VAR)` becomes the value of VAR when VAR is defined (env values see only the variables
defined before them; command and args see all of them), an undefined `$(VAR)` stays as written, `$$` is an
escaped `$` (so `$$(VAR)` gives the literal `$(VAR)`), and any other `$` is kept."""

from __future__ import annotations

from collections.abc import Mapping

from meshd.model.objects import Container, EnvVar


def expand(text: str, variables: Mapping[str, str]) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 == n:
            out.append(ch)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":  # escaped
            out.append("$")
            i += 2
        elif following == "(":
            close = text.find(")", i + 2)
            if close == -1:  # unclosed: kept as written
                out.append("$(")
                i += 2
                continue
            name = text[i + 2:close]
            out.append(variables[name] if name in variables else f"$({name})")
            i = close + 1
        else:
            out.append("$" + following)
            i += 2
    return "".join(out)


def expand_container(
    container: Container, base: Mapping[str, str] | None = None
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[EnvVar, ...]]:
    """The container's command, args and env with their references expanded; `base` is what the runtime
    defines before the container's own env (the process driver's POD_IP and PORT variables)."""
    variables = dict(base or {})
    env = []
    for var in container.env:
        value = expand(var.value, variables)
        variables[var.name] = value
        env.append(EnvVar(var.name, value))
    command = tuple(expand(part, variables) for part in container.command)
    args = tuple(expand(part, variables) for part in container.args)
    return command, args, tuple(env)
