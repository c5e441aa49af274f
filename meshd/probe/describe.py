"""kubectl-style one-line descriptions of probes and their last results, for `meshd describe pod`."""

from __future__ import annotations

from meshd.model.objects import ExecAction, GRPCAction, HTTPGetAction, Probe, TCPSocketAction
from meshd.probe.result import ProbeResult


def describe_probe(probe: Probe) -> str:
    """`http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3`, as kubectl prints it."""
    h = probe.handler
    if isinstance(h, HTTPGetAction):
        what = f"http-get {h.scheme.lower()}://{h.host or ''}:{h.port}{h.path}"
    elif isinstance(h, TCPSocketAction):
        what = f"tcp-socket :{h.port}"
    elif isinstance(h, GRPCAction):
        what = f"grpc <pod>:{h.port} {h.service or ''}".rstrip()
    elif isinstance(h, ExecAction):
        what = f"exec {list(h.command)}"
    else:
        what = type(h).__name__
    return (
        f"{what} delay={probe.initial_delay_seconds:g}s timeout={probe.timeout_seconds:g}s "
        f"period={probe.period_seconds:g}s #success={probe.success_threshold} #failure={probe.failure_threshold}"
    )


def describe_result(result: ProbeResult | None, *, timed: bool = True) -> str:
    """`failure (3.1ms): HTTP probe failed with statuscode: 500`, or `<none>` before the first probe.
    `timed=False` leaves the duration out, so the same outcome reads the same every period."""
    if result is None:
        return "<none>"
    text = f"{result.outcome} ({result.duration * 1000:.1f}ms)" if timed else result.outcome
    return f"{text}: {result.message}" if result.message else text
