"""Health probing (kubelet's prober is the model): probe kinds -> ProbeResult, pure thresholds, workers.

Public interface:
  probe_http / probe_tcp / probe_exec      one probe -> ProbeResult (http.py, tcp.py, exec.py)
  ProbeTracker, container_health           thresholds and readiness/restart decisions, pure (tracker.py)
  ContainerProber                          probes one running container; on_change / on_restart (worker.py)
  exec_runner(driver, container_id)        the driver's exec as probe_exec's `run`
"""

from meshd.probe.describe import describe_probe, describe_result
from meshd.probe.exec import exec_runner, probe_exec, run_subprocess
from meshd.probe.http import probe_http
from meshd.probe.result import ProbeResult
from meshd.probe.tcp import probe_tcp
from meshd.probe.tracker import ContainerHealth, ProbeStatus, ProbeTracker, Transition, container_health
from meshd.probe.worker import ContainerProber, ProbeReport, ProbeWorker

__all__ = [
    "ContainerHealth",
    "ContainerProber",
    "ProbeReport",
    "ProbeResult",
    "ProbeStatus",
    "ProbeTracker",
    "ProbeWorker",
    "Transition",
    "container_health",
    "describe_probe",
    "describe_result",
    "exec_runner",
    "probe_exec",
    "probe_http",
    "probe_tcp",
    "run_subprocess",
]
