"""The one result every probe kind returns (the kubelet's `probe.Result` plus its output).

`success` and `failure` are verdicts about the container: a refused or reset connection, a timeout, an HTTP
status outside 200..399 or a non-zero exit code is a `failure`. `error` means the prober itself broke (an
unresolvable port name, the engine refusing an exec): like the kubelet, trackers do not count errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["success", "failure", "error"]

MAX_MESSAGE = 1024  # bytes of probe output kept in a message (kubelet keeps 10 KiB; we print it in describe)


@dataclass(frozen=True)
class ProbeResult:
    outcome: Outcome
    message: str
    duration: float  # seconds the probe took

    @property
    def ok(self) -> bool:
        return self.outcome == "success"


def truncate(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` cut to `limit` characters, marked when cut."""
    return text if len(text) <= limit else text[:limit] + "... (truncated)"
