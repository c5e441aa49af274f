"""The one switch between the HTTP/2 codecs: nghttp2 (native.py, compiled with cffi at install time) when it
is importable, else the pure-Python `h2` (h2codec.py). MESHD_H2_CODEC=native|h2 forces one (tests run both;
`native` fails at start-up when the compiled module is missing). `NAME` says which one runs: the sidecar logs
it and exports it as meshd_sidecar_h2_codec_info."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .events import CodecError

CHOICE = os.environ.get("MESHD_H2_CODEC", "auto").strip().lower() or "auto"
if CHOICE not in ("auto", "native", "h2"):
    raise SystemExit(f"MESHD_H2_CODEC={CHOICE!r}: use auto, native or h2")
FALLBACK_WHY = ""
_factory: Callable[..., Any]
if CHOICE != "h2":
    try:
        from .native import NAME, NativeConnection as _factory
    except ImportError as e:
        if CHOICE == "native":
            raise SystemExit(f"MESHD_H2_CODEC=native, but the nghttp2 codec cannot load: {e}") from e
        FALLBACK_WHY = f"the nghttp2 codec cannot load ({e})"
        CHOICE = "h2"
if CHOICE == "h2":
    from .h2codec import NAME, H2Codec as _factory  # noqa: F811


def connection(*, client: bool) -> Any:
    """A new connection's codec (`client`: we open the streams, towards an endpoint)."""
    return _factory(client=client)


__all__ = ["NAME", "FALLBACK_WHY", "CodecError", "connection"]
