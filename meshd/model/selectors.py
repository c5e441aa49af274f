"""Label selectors as `kubectl -l` and the API's `labelSelector` take them (pure): equality-based
(`app=web`, `app==web`, `tier!=cache`) and set-based (`env in (a,b)`, `env notin (a)`, `app`, `!app`),
requirements joined by commas, all of which must hold."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Operator = Literal["=", "!=", "in", "notin", "exists", "!exists"]

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_EQUALITY = re.compile(rf"^\s*({_KEY})\s*(==|!=|=)\s*({_VALUE})\s*$")
_SET = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\(([^()]*)\)\s*$")
_EXISTS = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        return not present or value not in self.values  # != and notin: an absent label matches


def parse_selector(text: str | None) -> tuple[Requirement, ...]:
    """The requirements of a selector; an empty or missing selector selects everything.
    Raises ValueError naming the part that is not a selector (never a silent "match all")."""
    requirements = []
    for part in _split(text or ""):
        if not part.strip():
            raise ValueError(f"invalid label selector {text!r}: empty requirement")
        requirements.append(_requirement(part, text or ""))
    return tuple(requirements)


def selects(requirements: tuple[Requirement, ...], labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in requirements)


def _split(text: str) -> list[str]:
    """Splits on the commas outside parentheses."""
    if not text.strip():
        return []
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _requirement(part: str, text: str) -> Requirement:
    if m := _SET.match(part):
        values = [v.strip() for v in m.group(4).split(",")]
        if not all(re.fullmatch(_VALUE, v) for v in values) or values == [""]:
            raise ValueError(f"invalid label selector {text!r}: bad values in {part.strip()!r}")
        return Requirement(m.group(1), "in" if m.group(3) == "in" else "notin", frozenset(values))
    if m := _EQUALITY.match(part):
        operator: Operator = "!=" if m.group(3) == "!=" else "="
        return Requirement(m.group(1), operator, frozenset([m.group(4)]))
    if m := _EXISTS.match(part):
        return Requirement(m.group(2), "!exists" if m.group(1) else "exists")
    raise ValueError(f"invalid label selector {text!r}: cannot parse {part.strip()!r}")
