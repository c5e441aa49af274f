"""meshd.controller.podevents.container_events: the kubelet's Events from two looks at a container."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshd.controller.podevents import ContainerLook, container_events

WAITING = ContainerLook("web", "nginx:1.14.2", None, "waiting", "ContainerCreating", "", 0, "")
RUNNING = replace(WAITING, id="c1", phase="running", reason="")
POD = "web-0_default(uid)"


@pytest.mark.parametrize("before,now,expected", [
    (WAITING, RUNNING, [("Normal", "Created", "Created container: web"),
                        ("Normal", "Started", "Started container web")]),
    (None, RUNNING, []),  # adopted after an agent restart: it started long ago
    (RUNNING, RUNNING, []),
    (WAITING, replace(WAITING, reason="ErrImagePull", message="no such host"),
     [("Warning", "Failed", 'Failed to pull image "nginx:1.14.2": no such host'),
      ("Warning", "Failed", "Error: ErrImagePull")]),
    (replace(WAITING, reason="ErrImagePull"), replace(WAITING, reason="ImagePullBackOff"),
     [("Normal", "BackOff", 'Back-off pulling image "nginx:1.14.2"'),
      ("Warning", "Failed", "Error: ImagePullBackOff")]),
    (WAITING, replace(WAITING, reason="CreateContainerConfigError", message='secret "db" not found'),
     [("Warning", "Failed", 'Error: secret "db" not found')]),
    (RUNNING, replace(WAITING, id="c1", reason="CrashLoopBackOff", restart_count=1),
     [("Warning", "BackOff", f"Back-off restarting failed container web in pod {POD}")]),
    (replace(WAITING, reason="CrashLoopBackOff", restart_count=1),
     replace(WAITING, reason="CrashLoopBackOff", restart_count=2),
     [("Warning", "BackOff", f"Back-off restarting failed container web in pod {POD}")]),
    (replace(RUNNING, probe="Readiness probe succeeded"),
     replace(RUNNING, probe="Readiness probe failed: HTTP probe failed with statuscode: 500"),
     [("Warning", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 500")]),
    (replace(RUNNING, probe="Readiness probe failed: x"), replace(RUNNING, probe="Readiness probe failed: x"),
     []),
    (RUNNING, replace(RUNNING, probe="Liveness probe failed: dial tcp: connection refused"),
     [("Warning", "Unhealthy", "Liveness probe failed: dial tcp: connection refused"),
      ("Normal", "Killing", "Container web failed liveness probe, will be restarted")]),
])
def test_container_events(before, now, expected):
    assert container_events(before, now, pod=POD) == expected
