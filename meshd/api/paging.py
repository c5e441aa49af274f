"""`limit` and `continue` for lists: pages in (namespace, name) order, the token naming where the next page
starts. A limit smaller than the list is never ignored. Pure."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    continue_token: str  # "" on the last page
    remaining: int  # items after this page


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def encode_token(after: tuple[str, str], resource_version: str) -> str:
    text = json.dumps({"v": 1, "rv": resource_version, "after": list(after)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_token(token: str) -> tuple[str, str]:
    """The (namespace, name) a continue token resumes after; ValueError for a token meshd did not make."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        namespace, name = data["after"]
        if data.get("v") != 1 or not isinstance(namespace, str) or not isinstance(name, str):
            raise ValueError
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ValueError(f"continue key is not valid: {token!r}") from None
    return namespace, name


def parse_limit(text: str | None) -> int | None:
    """?limit= as a positive count, None when absent or 0 (no limit, as the API server); ValueError otherwise."""
    if text is None or text == "":
        return None
    try:
        limit = int(text)
    except ValueError:
        raise ValueError(f"limit: must be an integer, got {text!r}") from None
    if limit < 0:
        raise ValueError(f"limit: must not be negative, got {limit}")
    return limit or None


def paginate(items: list[dict[str, Any]], *, limit: int | None, token: str | None,
             resource_version: str) -> Page:
    """One page of `items`: all of them (in the given order) without limit or token, else in key order."""
    if limit is None and not token:
        return Page(list(items), "", 0)
    ordered = sorted(items, key=_key)
    if token:
        after = decode_token(token)
        ordered = [o for o in ordered if _key(o) > after]
    if limit is None or len(ordered) <= limit:
        return Page(ordered, "", 0)
    page = ordered[:limit]
    return Page(page, encode_token(_key(page[-1]), resource_version), len(ordered) - limit)


__all__ = ["Page", "decode_token", "encode_token", "paginate", "parse_limit"]
