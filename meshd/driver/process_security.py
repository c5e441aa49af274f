"""What the process driver enforces of a securityContext (the rest is refused at apply: see
meshd.model.security.refusals): the user and groups, set by the kernel when the agent runs as root, and
no_new_privs (allowPrivilegeEscalation: false), set in the child before it runs its command."""

from __future__ import annotations

import ctypes
import os
from typing import Any

from meshd.model.security import EffectiveSecurity, non_root_refusal

PR_SET_NO_NEW_PRIVS = 38


def popen_credentials(sc: EffectiveSecurity, *, agent_uid: int) -> dict[str, Any]:
    """subprocess keyword arguments (user, group, extra_groups): only what differs from the agent's own, so
    an agent that is not root runs pods as itself (refusals() keeps other ids out)."""
    out: dict[str, Any] = {}
    if sc.run_as_user is not None and (agent_uid == 0 or sc.run_as_user != agent_uid):
        out["user"] = sc.run_as_user
    if sc.run_as_group is not None and agent_uid == 0:
        out["group"] = sc.run_as_group
    if agent_uid == 0 and (out or sc.groups):
        out["extra_groups"] = list(sc.groups)  # as root, the child keeps none of the agent's groups
    return out


def process_refusal(sc: EffectiveSecurity, *, agent_uid: int, pod: str, container: str) -> str | None:
    """runAsNonRoot: the effective user is runAsUser, else the agent's own."""
    return non_root_refusal(sc, str(agent_uid), pod=pod, container=container)


def no_new_privs() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")


def own_volume(path: str, fs_group: int | None) -> None:
    """fsGroup owns an emptyDir directory, setgid, as the kubelet sets it (root only; else left as it is)."""
    if fs_group is None or os.geteuid() != 0:
        return
    os.chown(path, -1, fs_group)
    os.chmod(path, 0o2777)
