"""kubectl's `-o jsonpath=TEMPLATE` and `-o custom-columns=SPEC`, for the subset scripts use (pure).

Supported: `.a.b`, `['a.b']`, `[0]`, `[-1]`, `[*]`, `[1:3]`, `..name` (recursive), `[?(@.a.b=="x")]`
(== != < > <= >=, or a bare `@.a` for "exists"), `{range EXPR}...{end}`, string literals `{"\\n"}`, and text
between templates. Several results of one expression are joined by a space, as kubectl does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


class JsonPathError(ValueError):
    """A template that cannot be parsed or evaluated."""


# --- paths ------------------------------------------------------------------------------------------------

_STEP = re.compile(
    r"""\.\.(?P<deep>[A-Za-z0-9_\-$]+|\*)"""
    r"""|\.(?P<field>[A-Za-z0-9_\-$]+|\*)"""
    r"""|\[\?\((?P<filter>.*?)\)\]"""
    r"""|\[(?P<quoted>'[^']*'|"[^"]*")\]"""
    r"""|\[(?P<index>[^\]]*)\]"""
)
_FILTER = re.compile(r"""^\s*@(?P<path>[^=!<>\s]*)\s*(?:(?P<op>==|!=|<=|>=|<|>)\s*(?P<value>.+?))?\s*$""")


@dataclass(frozen=True)
class Step:
    kind: str  # field | deep | index | slice | all | filter
    arg: Any = None


def parse_path(text: str) -> list[Step]:
    """A path such as `.items[*].status.podIP` as steps; a leading `$` or missing dot is allowed."""
    text = text.strip()
    text = text.removeprefix("$")
    if text and text[0] not in ".[":
        text = "." + text
    steps, pos = [], 0
    while pos < len(text):
        m = _STEP.match(text, pos)
        if m is None:
            raise JsonPathError(f"unrecognized path at {text[pos:]!r}")
        pos = m.end()
        if m["deep"] is not None:
            steps.append(Step("deep", m["deep"]))
        elif m["field"] is not None:
            steps.append(Step("all") if m["field"] == "*" else Step("field", m["field"]))
        elif m["filter"] is not None:
            steps.append(Step("filter", _parse_filter(m["filter"])))
        elif m["quoted"] is not None:
            steps.append(Step("field", m["quoted"][1:-1]))
        else:
            steps.append(_index_step(m["index"].strip()))
    return steps


def _index_step(text: str) -> Step:
    if text == "*":
        return Step("all")
    if ":" in text:
        parts = [p.strip() for p in text.split(":")]
        try:
            bounds = [int(p) if p else None for p in parts[:2]]
        except ValueError:
            raise JsonPathError(f"bad slice [{text}]") from None
        return Step("slice", tuple(bounds))
    try:
        return Step("index", int(text))
    except ValueError:
        return Step("field", text)


def _parse_filter(text: str) -> tuple[list[Step], str | None, Any]:
    m = _FILTER.match(text)
    if m is None:
        raise JsonPathError(f"bad filter ?({text})")
    value: Any = None
    if m["op"]:
        raw = m["value"].strip()
        if raw[:1] in "'\"" and raw[-1:] == raw[:1]:
            value = raw[1:-1]
        else:
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw
    return parse_path(m["path"]) if m["path"] else [], m["op"], value


def _compare(left: Any, op: str, right: Any) -> bool:
    try:
        if op == "==":
            return left == right or str(left) == str(right)
        if op == "!=":
            return not (left == right or str(left) == str(right))
        return bool({"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op])
    except TypeError:
        return False


def _deep(value: Any, name: str) -> list[Any]:
    found: list[Any] = []
    if isinstance(value, dict):
        if name == "*":
            found.extend(value.values())
        elif name in value:
            found.append(value[name])
        for child in value.values():
            found.extend(_deep(child, name))
    elif isinstance(value, list):
        for child in value:
            found.extend(_deep(child, name))
    return found


def evaluate(steps: list[Step], root: Any) -> list[Any]:
    """Every value the path reaches from root (missing fields reach nothing)."""
    current = [root]
    for step in steps:
        nxt: list[Any] = []
        for value in current:
            if step.kind == "field" and isinstance(value, dict) and step.arg in value:
                nxt.append(value[step.arg])
            elif step.kind == "deep":
                nxt.extend(_deep(value, step.arg))
            elif step.kind == "all":
                nxt.extend(
                    value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
                )
            elif step.kind == "index" and isinstance(value, list) and -len(value) <= step.arg < len(value):
                nxt.append(value[step.arg])
            elif step.kind == "slice" and isinstance(value, list):
                nxt.extend(value[slice(*step.arg)])
            elif step.kind == "filter" and isinstance(value, list):
                path, op, right = step.arg
                for item in value:
                    hits = evaluate(path, item)
                    if (op is None and hits) or (
                        op is not None and any(_compare(h, op, right) for h in hits)
                    ):
                        nxt.append(item)
        current = nxt
    return current


def text_of(value: Any) -> str:
    """A value as kubectl prints it in jsonpath output: strings bare, everything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (dict, list)) else str(value)


# --- templates --------------------------------------------------------------------------------------------

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _tokens(template: str) -> list[tuple[str, str]]:
    """("text", literal) and ("expr", inside braces) in order."""
    out, pos = [], 0
    while pos < len(template):
        start = template.find("{", pos)
        if start < 0:
            out.append(("text", template[pos:]))
            break
        if start > pos:
            out.append(("text", template[pos:start]))
        depth, end, quote = 0, start, ""
        while end < len(template):
            ch = template[end]
            if quote:
                if ch == "\\":
                    end += 1
                elif ch == quote:
                    quote = ""
            elif ch in "'\"":
                quote = ch
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    break
            end += 1
        if end >= len(template):
            raise JsonPathError(f"unclosed {{ in {template!r}")
        out.append(("expr", template[start + 1 : end].strip()))
        pos = end + 1
    return out


def _literal(expr: str) -> str | None:
    if len(expr) >= 2 and expr[0] == expr[-1] and expr[0] in "'\"":
        body, out, i = expr[1:-1], [], 0
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body):
                out.append(_ESCAPES.get(body[i + 1], body[i + 1]))
                i += 2
            else:
                out.append(body[i])
                i += 1
        return "".join(out)
    return None


def render_template(template: str, data: Any) -> str:
    """Apply a kubectl jsonpath template to data (a List or one object)."""
    tokens = _tokens(template)
    out: list[str] = []
    _render(tokens, 0, len(tokens), data, data, out)
    return "".join(out)


def _block_end(tokens: list[tuple[str, str]], start: int) -> int:
    depth = 0
    for i in range(start, len(tokens)):
        kind, text = tokens[i]
        if kind == "expr" and text.startswith("range "):
            depth += 1
        elif kind == "expr" and text == "end":
            depth -= 1
            if depth == 0:
                return i
    raise JsonPathError("{range} without {end}")


def _render(
    tokens: list[tuple[str, str]], start: int, stop: int, root: Any, here: Any, out: list[str]
) -> None:
    i = start
    while i < stop:
        kind, text = tokens[i]
        if kind == "text":
            out.append(text)
        elif text.startswith("range "):
            end = _block_end(tokens, i)
            for item in _values(text[len("range ") :], root, here):
                _render(tokens, i + 1, end, root, item, out)
            i = end
        elif text == "end":
            raise JsonPathError("{end} without {range}")
        else:
            literal = _literal(text)
            out.append(
                literal if literal is not None else " ".join(text_of(v) for v in _values(text, root, here))
            )
        i += 1


def _values(expr: str, root: Any, here: Any) -> list[Any]:
    expr = expr.strip()
    if expr in ("", "@", "."):
        return [here]
    if expr.startswith("$"):
        return evaluate(parse_path(expr), root)
    expr = expr.removeprefix("@")
    return evaluate(parse_path(expr), here)


# --- custom columns ---------------------------------------------------------------------------------------


def parse_custom_columns(spec: str) -> list[tuple[str, list[Step]]]:
    """ "NAME:.metadata.name,IP:.status.podIP" -> [(header, path)]."""
    columns = []
    for part in spec.split(","):
        header, sep, path = part.partition(":")
        if not sep or not header:
            raise JsonPathError(f"custom-columns: expected HEADER:PATH, got {part!r}")
        path = path.strip()
        if path.startswith("{") and path.endswith("}"):
            path = path[1:-1]
        columns.append((header, parse_path(path)))
    return columns


def custom_column_rows(spec: str, objects: list[Any], *, headers: bool = True) -> list[list[str]]:
    """Header + one row per object; a missing value is "<none>", several are joined by commas."""
    columns = parse_custom_columns(spec)
    rows = [[h for h, _ in columns]] if headers else []
    for obj in objects:
        rows.append([",".join(text_of(v) for v in evaluate(path, obj)) or "<none>" for _, path in columns])
    return rows
