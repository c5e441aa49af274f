"""Timestamps as kubectl shows them: ages ("5m2s", kubectl's duration.HumanDuration) and describe's dates."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp from the API ("2026-11-24T22:56:12Z", fractions allowed), or None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)  # 3.11 reads "Z" and fractions
    except (ValueError, AttributeError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def human_duration(seconds: float) -> str:
    """kubectl's HumanDuration: 59s, 2m5s, 15m, 3h20m, 2d4h, 1y30d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age(timestamp: str | None, now: datetime) -> str:
    """The age of an object from its creationTimestamp; "<unknown>" without one."""
    then = parse_time(timestamp)
    if then is None:
        return "<unknown>"
    return human_duration((now - then).total_seconds())


def describe_time(timestamp: str | None) -> str:
    """A timestamp as `kubectl describe` prints it: "Tue, 24 Nov 2026 22:56:12 +0000"."""
    then = parse_time(timestamp)
    return then.strftime("%a, %d %b %Y %H:%M:%S %z") if then else "<unknown>"
