"""securityContext, pod and container level: the fields meshd enforces, the runtime defaults it accepts as
what it does anyway, and errors naming the path for everything else (never silently ignored)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from meshd.manifests.errors import FieldPath
from meshd.manifests.reader import MISSING, DocumentReader
from meshd.model.objects import PodSecurityContext, SecurityContext

_ID_MAX = 2**31 - 1
# seccompProfile and appArmorProfile: RuntimeDefault is what the Docker engine applies to every container
_PROFILE_DEFAULT = ("RuntimeDefault",)
_CAPABILITY = re.compile(r"[A-Z][A-Z0-9_]*")

CONTAINER_FIELDS = (
    "runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem", "allowPrivilegeEscalation",
    "privileged", "capabilities", "seccompProfile", "appArmorProfile", "procMount",
)
CONTAINER_UNSUPPORTED = ("seLinuxOptions", "windowsOptions")
POD_FIELDS = (
    "runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "supplementalGroups", "fsGroupChangePolicy",
    "seccompProfile", "appArmorProfile", "supplementalGroupsPolicy",
)
POD_UNSUPPORTED = ("seLinuxOptions", "windowsOptions", "sysctls", "seLinuxChangePolicy")


def read_container_security(reader: DocumentReader, obj: Mapping[str, Any], path: FieldPath) -> SecurityContext | None:
    value = reader.get(obj, "securityContext", path)
    if value is MISSING:
        return None
    spath = path + ("securityContext",)
    sc = reader.mapping(value, spath)
    reader.check_fields(sc, spath, known=CONTAINER_FIELDS, unsupported=CONTAINER_UNSUPPORTED)
    _check_profiles(reader, sc, spath)
    reader.choice(sc, "procMount", spath, ("Default",), default="Default")
    add: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    caps = reader.get(sc, "capabilities", spath)
    if caps is not MISSING:
        cpath = spath + ("capabilities",)
        caps = reader.mapping(caps, cpath)
        reader.check_fields(caps, cpath, known=("add", "drop"))
        add, drop = _capabilities(reader, caps, "add", cpath), _capabilities(reader, caps, "drop", cpath)
    out = SecurityContext(
        run_as_user=_id(reader, sc, "runAsUser", spath),
        run_as_group=_id(reader, sc, "runAsGroup", spath),
        run_as_non_root=_flag(reader, sc, "runAsNonRoot", spath),
        read_only_root_filesystem=_flag(reader, sc, "readOnlyRootFilesystem", spath),
        allow_privilege_escalation=_flag(reader, sc, "allowPrivilegeEscalation", spath),
        privileged=_flag(reader, sc, "privileged", spath),
        capabilities_add=add,
        capabilities_drop=drop,
    )
    return None if out == SecurityContext() else out  # `securityContext: {}` asks for nothing


def read_pod_security(reader: DocumentReader, spec: Mapping[str, Any], path: FieldPath) -> PodSecurityContext | None:
    value = reader.get(spec, "securityContext", path)
    if value is MISSING:
        return None
    spath = path + ("securityContext",)
    sc = reader.mapping(value, spath)
    reader.check_fields(sc, spath, known=POD_FIELDS, unsupported=POD_UNSUPPORTED)
    _check_profiles(reader, sc, spath)
    # a fresh emptyDir is given to fsGroup either way; Merge is what the engine does with the image's groups
    reader.choice(sc, "fsGroupChangePolicy", spath, ("Always", "OnRootMismatch"), default="Always")
    reader.choice(sc, "supplementalGroupsPolicy", spath, ("Merge",), default="Merge")
    groups = tuple(reader.as_integer(g, spath + ("supplementalGroups", i), minimum=0, maximum=_ID_MAX)
                   for i, g in enumerate(reader.sequence(sc, "supplementalGroups", spath)))
    out = PodSecurityContext(
        run_as_user=_id(reader, sc, "runAsUser", spath),
        run_as_group=_id(reader, sc, "runAsGroup", spath),
        run_as_non_root=_flag(reader, sc, "runAsNonRoot", spath),
        fs_group=_id(reader, sc, "fsGroup", spath),
        supplemental_groups=groups,
    )
    return None if out == PodSecurityContext() else out


def _id(reader: DocumentReader, sc: Mapping[str, Any], key: str, path: FieldPath) -> int | None:
    return reader.integer(sc, key, path, minimum=0, maximum=_ID_MAX)


def _flag(reader: DocumentReader, sc: Mapping[str, Any], key: str, path: FieldPath) -> bool | None:
    return None if reader.get(sc, key, path) is MISSING else reader.boolean(sc, key, path)


def _check_profiles(reader: DocumentReader, sc: Mapping[str, Any], path: FieldPath) -> None:
    for key in ("seccompProfile", "appArmorProfile"):
        value = reader.get(sc, key, path)
        if value is MISSING:
            continue
        ppath = path + (key,)
        profile = reader.mapping(value, ppath)
        reader.check_fields(profile, ppath, known=("type",), unsupported=("localhostProfile",))
        reader.get(profile, "type", ppath, required=True)
        reader.choice(profile, "type", ppath, _PROFILE_DEFAULT, default="RuntimeDefault")


def _capabilities(reader: DocumentReader, caps: Mapping[str, Any], key: str, path: FieldPath) -> tuple[str, ...]:
    out = []
    for i, name in enumerate(reader.strings(caps, key, path)):
        bare = name.upper().removeprefix("CAP_")
        if not _CAPABILITY.fullmatch(bare):
            raise reader.fail(path + (key, i), f'invalid capability "{name}"')
        out.append(bare)
    return tuple(out)


def render_container_security(sc: SecurityContext) -> dict[str, Any]:
    """The securityContext as `-o yaml` prints it (only the fields set)."""
    out: dict[str, Any] = {}
    for key, value in (("runAsUser", sc.run_as_user), ("runAsGroup", sc.run_as_group),
                       ("runAsNonRoot", sc.run_as_non_root), ("readOnlyRootFilesystem", sc.read_only_root_filesystem),
                       ("allowPrivilegeEscalation", sc.allow_privilege_escalation), ("privileged", sc.privileged)):
        if value is not None:
            out[key] = value
    caps = {k: list(v) for k, v in (("add", sc.capabilities_add), ("drop", sc.capabilities_drop)) if v}
    if caps:
        out["capabilities"] = caps
    return out


def render_pod_security(sc: PodSecurityContext) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (("runAsUser", sc.run_as_user), ("runAsGroup", sc.run_as_group),
                       ("runAsNonRoot", sc.run_as_non_root), ("fsGroup", sc.fs_group)):
        if value is not None:
            out[key] = value
    if sc.supplemental_groups:
        out["supplementalGroups"] = list(sc.supplemental_groups)
    return out
