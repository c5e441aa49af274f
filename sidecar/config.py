"""Per-Service proxy settings read from Linkerd-style annotations (`meshd.io/*`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

LB_ANNOTATION = "meshd.io/lb-algorithm"
TIMEOUT_ANNOTATION = "meshd.io/timeout"
RETRIES_ANNOTATION = "meshd.io/retries"
OPAQUE_PORTS_ANNOTATION = "meshd.io/opaque-ports"  # Linkerd's config.linkerd.io/opaque-ports
ALGORITHMS = ("round_robin", "least_request", "ewma")
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 2

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float | None:
    """'250ms' -> 0.25, '5s' -> 5.0, '1m' -> 60.0, '2' -> 2.0; '0', 'none', 'off' -> None (no timeout)."""
    if text.strip().lower() in ("none", "off", "infinite", "0", "0s"):
        return None
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 5s or 250ms)")
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass(frozen=True)
class ServiceConfig:
    algorithm: str = "round_robin"
    timeout: float | None = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    problems: tuple[str, ...] = ()  # annotations that were invalid (defaults used instead)


def parse_port_ranges(text: str) -> tuple[tuple[int, int], ...]:
    """'6379, 7000-7010' -> ((6379, 6379), (7000, 7010)); ValueError names the bad item."""
    ranges = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        low, sep, high = item.partition("-")
        try:
            lo, hi = int(low), int(high) if sep else int(low)
        except ValueError:
            raise ValueError(f"not a port or range: {item!r} (use e.g. 6379,7000-7010)") from None
        if not 1 <= lo <= hi <= 65535:
            raise ValueError(f"not a port or range in 1-65535: {item!r}")
        ranges.append((lo, hi))
    return tuple(ranges)


def config_from_annotations(annotations: Mapping[str, str]) -> ServiceConfig:
    """Read the `meshd.io/*` annotations; an invalid value falls back to the default and is reported."""
    problems: list[str] = []
    algorithm = annotations.get(LB_ANNOTATION, "round_robin").strip() or "round_robin"
    if algorithm not in ALGORITHMS:
        problems.append(f"{LB_ANNOTATION}: unknown algorithm {algorithm!r} (use {', '.join(ALGORITHMS)})")
        algorithm = "round_robin"
    timeout: float | None = DEFAULT_TIMEOUT
    if TIMEOUT_ANNOTATION in annotations:
        try:
            timeout = parse_duration(annotations[TIMEOUT_ANNOTATION])
        except ValueError as e:
            problems.append(f"{TIMEOUT_ANNOTATION}: {e}")
    retries = DEFAULT_RETRIES
    if RETRIES_ANNOTATION in annotations:
        try:
            retries = int(annotations[RETRIES_ANNOTATION])
            if retries < 0:
                raise ValueError
        except ValueError:
            problems.append(
                f"{RETRIES_ANNOTATION}: not a non-negative integer: {annotations[RETRIES_ANNOTATION]!r}"
            )
            retries = DEFAULT_RETRIES
    if OPAQUE_PORTS_ANNOTATION in annotations:
        try:
            parse_port_ranges(annotations[OPAQUE_PORTS_ANNOTATION])
        except ValueError as e:
            problems.append(f"{OPAQUE_PORTS_ANNOTATION}: {e}")
    return ServiceConfig(algorithm=algorithm, timeout=timeout, retries=retries, problems=tuple(problems))
