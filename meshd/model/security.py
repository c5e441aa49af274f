"""securityContext decisions (pure): a container's effective context (the container's fields over the
pod's, as the kubelet merges them), the kubelet's runAsNonRoot check, and what a driver can enforce, so a
field it cannot is refused at apply with its path instead of being ignored."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from meshd.model.objects import Container, PodSpec

PathPart = str | int
Refusal = tuple[tuple[PathPart, ...], str]  # (field path under the pod spec, why)

ALLOW_PRIVILEGED_HINT = "meshd runs privileged pods only when the agent runs with --allow-privileged"


@dataclass(frozen=True)
class EffectiveSecurity:
    """What one container runs with: the container's securityContext over the pod's."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool = False
    read_only_root_filesystem: bool = False
    no_new_privileges: bool = False  # allowPrivilegeEscalation: false
    privileged: bool = False
    capabilities_add: tuple[str, ...] = ()
    capabilities_drop: tuple[str, ...] = ()
    fs_group: int | None = None
    supplemental_groups: tuple[int, ...] = ()
    host_pid: bool = False
    host_ipc: bool = False
    host_network: bool = False

    @property
    def groups(self) -> tuple[int, ...]:
        """Supplementary groups: fsGroup first, then supplementalGroups (no duplicates)."""
        first = () if self.fs_group is None else (self.fs_group,)
        return tuple(dict.fromkeys((*first, *self.supplemental_groups)))


def effective_security(spec: PodSpec, container: Container) -> EffectiveSecurity:
    pod = spec.security_context
    own = container.security_context

    def pick(name: str) -> object:
        value = getattr(own, name, None) if own is not None else None
        return value if value is not None else (getattr(pod, name, None) if pod is not None else None)

    user, group, non_root = pick("run_as_user"), pick("run_as_group"), pick("run_as_non_root")
    return EffectiveSecurity(
        run_as_user=user if isinstance(user, int) else None,
        run_as_group=group if isinstance(group, int) else None,
        run_as_non_root=non_root is True,
        read_only_root_filesystem=bool(own and own.read_only_root_filesystem),
        no_new_privileges=bool(own and own.allow_privilege_escalation is False),
        privileged=bool(own and own.privileged),
        capabilities_add=own.capabilities_add if own else (),
        capabilities_drop=own.capabilities_drop if own else (),
        fs_group=pod.fs_group if pod else None,
        supplemental_groups=pod.supplemental_groups if pod else (),
        host_pid=spec.host_pid,
        host_ipc=spec.host_ipc,
        host_network=spec.host_network,
    )


def parse_image_user(user: str) -> tuple[int | None, str]:
    """An image's USER ("1000", "1000:1000", "nobody", "") -> (uid or None, the user part as written);
    no USER is root, as the runtime runs it."""
    name = user.split(":", 1)[0]
    if not name:
        return 0, ""
    return (int(name), name) if name.isdigit() else (None, name)


def non_root_refusal(sc: EffectiveSecurity, image_user: str, *, pod: str, container: str) -> str | None:
    """The kubelet's verifyRunAsNonRoot, with its messages; `pod` as the kubelet formats it (name_ns(uid))."""
    if not sc.run_as_non_root:
        return None
    if sc.run_as_user is not None:
        if sc.run_as_user == 0:
            return f"container's runAsUser breaks non-root policy (pod: \"{pod}\", container: {container})"
        return None
    uid, name = parse_image_user(image_user)
    if uid == 0:
        return f"container has runAsNonRoot and image will run as root (pod: \"{pod}\", container: {container})"
    if uid is None:
        return (f"container has runAsNonRoot and image has non-numeric user ({name}), cannot verify user is "
                f"non-root (pod: \"{pod}\", container: {container})")
    return None


# --- what a driver enforces ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecuritySupport:
    """The agent's driver and its rights: `agent_uid` is the agent's effective uid (the process driver runs
    pods as the agent's user, and changes it only as root)."""

    driver: str = "docker"
    allow_privileged: bool = False
    agent_uid: int = 0
    agent_gid: int = 0


def _containers(spec: PodSpec) -> Iterator[tuple[tuple[PathPart, ...], Container]]:
    for key, items in (("initContainers", spec.init_containers), ("containers", spec.containers)):
        for i, container in enumerate(items):
            yield (key, i), container


def refusals(spec: PodSpec, support: SecuritySupport) -> list[Refusal]:
    """Fields of a pod spec this agent will not run, each with its path under the pod spec."""
    out: list[Refusal] = []
    for key, on in (("hostNetwork", spec.host_network), ("hostPID", spec.host_pid), ("hostIPC", spec.host_ipc)):
        if on and not support.allow_privileged:
            out.append(((key,), f"Forbidden: {ALLOW_PRIVILEGED_HINT}"))
    if spec.host_network and support.allow_privileged and support.driver == "docker":
        out.append((("hostNetwork",), "not supported: pods get their address on the meshd bridge"))
    for where, container in _containers(spec):
        sc = container.security_context
        if sc is not None and sc.privileged and not support.allow_privileged:
            out.append((where + ("securityContext", "privileged"), f"Forbidden: {ALLOW_PRIVILEGED_HINT}"))
    if support.driver == "process":
        out.extend(_process_refusals(spec, support))
    return out


_PROCESS = "not supported by the process driver"


def _process_refusals(spec: PodSpec, support: SecuritySupport) -> Iterator[Refusal]:
    """The process driver runs a command on the host: it can set the user, the groups (as root) and
    no_new_privs; it has no root filesystem of its own and no capability bounding set to change."""
    root = support.agent_uid == 0
    pod = spec.security_context
    if pod is not None and not root:
        ours = {"runAsUser": support.agent_uid, "runAsGroup": support.agent_gid}
        for key, value in (("runAsUser", pod.run_as_user), ("runAsGroup", pod.run_as_group)):
            if value is not None and value != ours[key]:
                yield (("securityContext", key),
                       f"{_PROCESS} unless the agent runs as root (it runs pods as uid {support.agent_uid})")
        for key, on in (("fsGroup", pod.fs_group is not None), ("supplementalGroups", bool(pod.supplemental_groups))):
            if on:
                yield (("securityContext", key), f"{_PROCESS} unless the agent runs as root")
    for where, container in _containers(spec):
        sc = container.security_context
        if sc is None:
            continue
        path = where + ("securityContext",)
        if sc.read_only_root_filesystem:
            yield (path + ("readOnlyRootFilesystem",),
                   f"{_PROCESS}: a process shares the host's filesystem (use the Docker driver)")
        if sc.capabilities_add or sc.capabilities_drop:
            yield (path + ("capabilities",), f"{_PROCESS}: use the Docker driver")
        if sc.privileged and not root:
            yield (path + ("privileged",), f"{_PROCESS} unless the agent runs as root")
        if not root:
            ours = {"runAsUser": support.agent_uid, "runAsGroup": support.agent_gid}
            for key, value in (("runAsUser", sc.run_as_user), ("runAsGroup", sc.run_as_group)):
                if value is not None and value != ours[key]:
                    yield (path + (key,),
                           f"{_PROCESS} unless the agent runs as root (it runs pods as uid {support.agent_uid})")


def object_refusals(obj: object, support: SecuritySupport) -> list[Refusal]:
    """refusals() for every pod spec an object holds (a Pod's spec, a workload's template), with full paths."""
    out: list[Refusal] = []
    spec = getattr(obj, "spec", None)
    if isinstance(spec, PodSpec):
        out += [(("spec", *path), why) for path, why in refusals(spec, support)]
    template = getattr(obj, "template", None)
    if isinstance(getattr(template, "spec", None), PodSpec):
        out += [(("spec", "template", "spec", *path), why) for path, why in refusals(template.spec, support)]  # type: ignore[union-attr]
    return out
