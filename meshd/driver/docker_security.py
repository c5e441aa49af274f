"""A container's effective securityContext as Docker engine create options (pure, table-tested)."""

from __future__ import annotations

from typing import Any

from meshd.model.security import EffectiveSecurity


def docker_user(sc: EffectiveSecurity, image_user: str) -> str | None:
    """runAsUser/runAsGroup as Docker's `user` ("UID[:GID]"); runAsGroup alone keeps the image's user
    (root when it has none). None: the image's USER as it is."""
    if sc.run_as_user is None and sc.run_as_group is None:
        return None
    user = str(sc.run_as_user) if sc.run_as_user is not None else (image_user.split(":", 1)[0] or "0")
    return f"{user}:{sc.run_as_group}" if sc.run_as_group is not None else user


def docker_security_options(sc: EffectiveSecurity, image_user: str = "") -> dict[str, Any]:
    """Keyword arguments for docker's containers.create."""
    out: dict[str, Any] = {}
    user = docker_user(sc, image_user)
    if user is not None:
        out["user"] = user
    if sc.groups:
        out["group_add"] = [str(g) for g in sc.groups]
    if sc.read_only_root_filesystem:
        out["read_only"] = True
    if sc.no_new_privileges:
        out["security_opt"] = ["no-new-privileges"]
    if sc.capabilities_add:
        out["cap_add"] = list(sc.capabilities_add)
    if sc.capabilities_drop:
        out["cap_drop"] = list(sc.capabilities_drop)
    if sc.privileged:
        out["privileged"] = True
    if sc.host_pid:
        out["pid_mode"] = "host"
    if sc.host_ipc:
        out["ipc_mode"] = "host"
    return out


def needs_image_user(sc: EffectiveSecurity) -> bool:
    """Whether the image's USER matters: runAsNonRoot without runAsUser, or runAsGroup without runAsUser."""
    return sc.run_as_user is None and (sc.run_as_non_root or sc.run_as_group is not None)
