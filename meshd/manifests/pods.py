"""Pod specs, containers, probes and volumes: the DESIGN.md subset, with Kubernetes' defaults."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, cast

from meshd.manifests import names
from meshd.manifests.errors import FieldPath
from meshd.manifests.meta import read_template_meta
from meshd.manifests.podconfig import (
    KEY_REFS,
    check_sub_path,
    check_sub_paths,
    read_config_volume,
    read_env_from,
    read_key_ref,
    read_pull_secrets,
)
from meshd.manifests.probes import read_pre_stop, read_probe
from meshd.manifests.quantity import QuantityError, parse_cpu, parse_memory
from meshd.manifests.reader import MISSING, DocumentReader
from meshd.manifests.scheduling import SCHEDULING_FIELDS, read_scheduling
from meshd.manifests.security import read_container_security, read_pod_security
from meshd.manifests.storage import VOLUME_SOURCE_FIELDS, read_volume_sources
from meshd.model.objects import (
    Container,
    ContainerPort,
    EnvVar,
    PodSpec,
    PodTemplate,
    ResourceFieldRef,
    ResourceList,
    Resources,
    Volume,
    VolumeMount,
)

POD_SPEC_IGNORED: Mapping[str, str] = {
    "schedulerName": "ignored: meshd's own scheduler places every pod",
    "priorityClassName": "ignored: meshd has no pod priorities",
    "priority": "ignored: meshd has no pod priorities",
    "preemptionPolicy": "ignored: meshd has no pod priorities",
    "serviceAccountName": "ignored: meshd has no service accounts",
    "serviceAccount": "ignored: meshd has no service accounts",
    "automountServiceAccountToken": "ignored: meshd has no service accounts",
    "dnsPolicy": "ignored: pods resolve names through meshd's DNS",
    "enableServiceLinks": "ignored: meshd sets no service-link environment variables",
    "os": "ignored",
    "overhead": "ignored",
}
POD_SPEC_UNSUPPORTED = (
    "ephemeralContainers",
    "hostUsers",
    "hostAliases",
    "dnsConfig",
    "activeDeadlineSeconds",
    "readinessGates",
    "runtimeClassName",
    "setHostnameAsFQDN",
    "schedulingGates",
    "resourceClaims",
    "resources",
)
CONTAINER_FIELDS = (
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "env",
    "ports",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "volumeMounts",
    "lifecycle",
    "workingDir",
    "envFrom",
    "securityContext",
    "stdin",
    "stdinOnce",
    "tty",
)
CONTAINER_IGNORED: Mapping[str, str] = {
    "terminationMessagePath": "ignored",
    "terminationMessagePolicy": "ignored",
    "resizePolicy": "ignored",
}
CONTAINER_UNSUPPORTED = ("volumeDevices", "restartPolicy")
_VOLUME_HINT = ("not supported: meshd supports emptyDir, persistentVolumeClaim, hostPath, configMap, secret, "
                "projected and downwardAPI volumes")


def config_sources(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The manifest keys of the config sources read (config_map -> configMap)."""
    keys = {"config_map": "configMap", "secret": "secret", "projected": "projected", "downward_api": "downwardAPI"}
    return tuple(keys[k] for k in config)


def default_pull_policy(image: str) -> str:
    """Kubernetes' default: Always for ":latest" or no tag, IfNotPresent for any other tag or a digest."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "Always"
    return "Always" if last.rsplit(":", 1)[1] == "latest" else "IfNotPresent"


def read_pod_template(
    reader: DocumentReader,
    spec: Mapping[str, Any],
    path: FieldPath,
    *,
    namespace: str,
) -> PodTemplate:
    """spec.template of a Deployment or ReplicaSet: restartPolicy must be Always there."""
    template_path = path + ("template",)
    template = reader.mapping(reader.get(spec, "template", path, required=True), template_path)
    reader.check_fields(template, template_path, known=("metadata", "spec"))
    metadata = read_template_meta(reader, template, template_path, namespace=namespace)
    pod_spec = read_pod_spec(
        reader,
        reader.get(template, "spec", template_path, required=True),
        template_path + ("spec",),
        restart_policies=("Always",),
    )
    return PodTemplate(metadata=metadata, spec=pod_spec)


def read_pod_spec(
    reader: DocumentReader,
    value: Any,
    path: FieldPath,
    *,
    restart_policies: tuple[str, ...] = ("Always", "OnFailure", "Never"),
) -> PodSpec:
    """A pod's spec: containers sharing one network namespace, emptyDir volumes, restart policy."""
    spec = reader.mapping(value, path)
    reader.check_fields(
        spec,
        path,
        known=(
            "containers",
            "restartPolicy",
            "terminationGracePeriodSeconds",
            "shareProcessNamespace",
            "volumes",
            "hostname",
            "subdomain",
            "imagePullSecrets",
            "initContainers",
            "securityContext",
            "hostNetwork",
            "hostPID",
            "hostIPC",
            *SCHEDULING_FIELDS,
        ),
        ignored=POD_SPEC_IGNORED,
        unsupported=POD_SPEC_UNSUPPORTED,
    )
    volumes = _read_volumes(reader, spec, path)
    volume_names = {v.name for v in volumes}
    init_containers = _read_containers(reader, spec, path, volume_names=volume_names,
                                       list_key="initContainers")
    containers = _read_containers(reader, spec, path, volume_names=volume_names,
                                  taken=[*init_containers])
    check_sub_paths(reader, volumes, containers, path)
    check_sub_paths(reader, volumes, init_containers, path, list_key="initContainers")
    restart_policy = reader.choice(spec, "restartPolicy", path, restart_policies, default="Always")
    hostname = reader.string(spec, "hostname", path)
    reader.check_name(hostname, path + ("hostname",), names.dns1123_label, required=False)
    subdomain = reader.string(spec, "subdomain", path)
    reader.check_name(subdomain, path + ("subdomain",), names.dns1123_label, required=False)
    return PodSpec(
        containers=containers,
        restart_policy=cast(Any, restart_policy),
        termination_grace_period_seconds=reader.number(
            spec, "terminationGracePeriodSeconds", path, default=30
        ),
        share_process_namespace=reader.boolean(spec, "shareProcessNamespace", path),
        volumes=volumes,
        hostname=hostname or None,
        subdomain=subdomain or None,
        image_pull_secrets=read_pull_secrets(reader, spec, path),
        init_containers=init_containers,
        security_context=read_pod_security(reader, spec, path),
        host_network=reader.boolean(spec, "hostNetwork", path),
        host_pid=reader.boolean(spec, "hostPID", path),
        host_ipc=reader.boolean(spec, "hostIPC", path),
        scheduling=read_scheduling(reader, spec, path),
    )


def _read_volumes(reader: DocumentReader, spec: Mapping[str, Any], path: FieldPath) -> tuple[Volume, ...]:
    volumes: list[Volume] = []
    seen: set[str] = set()
    for i, item in enumerate(reader.sequence(spec, "volumes", path)):
        vpath = path + ("volumes", i)
        volume = reader.mapping(item, vpath)
        name = reader.string(volume, "name", vpath, required=True)
        reader.check_name(name, vpath + ("name",), names.dns1123_label)
        assert name is not None
        if name in seen:
            raise reader.fail(vpath + ("name",), f'duplicate volume name "{name}"')
        seen.add(name)
        sources = read_volume_sources(reader, volume, vpath)
        config = read_config_volume(reader, volume, vpath, read_resource_field_ref)
        if sources and config:
            raise reader.fail(vpath + (config_sources(config)[0],), "may not specify more than 1 volume type")
        for key, source in volume.items():
            known = ("name", "emptyDir", *VOLUME_SOURCE_FIELDS, *config_sources(config))
            if key not in known and source is not None:
                raise reader.fail(vpath + (key,), _VOLUME_HINT)
        medium = ""
        empty_dir = reader.get(volume, "emptyDir", vpath)
        if empty_dir is not MISSING:  # no source at all defaults to emptyDir, as in Kubernetes
            epath = vpath + ("emptyDir",)
            empty_dir = reader.mapping(empty_dir, epath)
            reader.check_fields(
                empty_dir, epath, known=("medium",), ignored={"sizeLimit": "not enforced yet (ignored)"}
            )
            medium = reader.choice(empty_dir, "medium", epath, ("", "Memory"), default="")
        volumes.append(Volume(name=name, medium=cast(Any, medium), **sources, **config))
    return tuple(volumes)


def _read_containers(
    reader: DocumentReader, spec: Mapping[str, Any], path: FieldPath, *, volume_names: set[str],
    list_key: str = "containers", taken: list[Container] | None = None,
) -> tuple[Container, ...]:
    """`containers`, or `initContainers` (key): names are unique across both, and so are the ports of the
    app containers and native sidecars (they run at once in one network namespace)."""
    init = list_key == "initContainers"
    items = reader.sequence(spec, list_key, path, required=not init)
    if not items and not init:
        raise reader.fail(path + (list_key,), "at least one container is required")
    containers: list[Container] = []
    container_names: set[str] = {c.name for c in taken or ()}
    port_names: dict[str, FieldPath] = {}
    port_numbers: dict[tuple[int, str], FieldPath] = {}
    for c in taken or ():
        if c.restart_policy == "Always":
            port_names.update((p.name, ()) for p in c.ports if p.name)
            port_numbers.update(((p.container_port, p.protocol), ()) for p in c.ports)
    for i, item in enumerate(items):
        cpath = path + (list_key, i)
        container = _read_container(reader, item, cpath, volume_names=volume_names, init=init)
        if container.name in container_names:
            raise reader.fail(cpath + ("name",), f'duplicate container name "{container.name}"')
        container_names.add(container.name)
        # the containers of a pod share one network namespace: a port is bound once per pod
        for j, port in enumerate(container.ports if not init or container.restart_policy else ()):
            ppath = cpath + ("ports", j)
            if port.name is not None:
                if port.name in port_names:
                    raise reader.fail(ppath + ("name",), f'duplicate port name "{port.name}" in this pod')
                port_names[port.name] = ppath
            key = (port.container_port, port.protocol)
            if key in port_numbers:
                raise reader.fail(
                    ppath + ("containerPort",),
                    f"duplicate port {port.container_port}/{port.protocol} in this pod (containers share "
                    "one network namespace)",
                )
            port_numbers[key] = ppath
        containers.append(container)
    for i, container in enumerate(containers):
        for j, var in enumerate(container.env):
            ref = var.resource_field
            if ref is not None and ref.container_name and ref.container_name not in container_names:
                where = (list_key, i, "env", j, "valueFrom", "resourceFieldRef", "containerName")
                raise reader.fail(path + where, f'no container "{ref.container_name}" in this pod')
    return tuple(containers)


def _read_container(
    reader: DocumentReader, value: Any, path: FieldPath, *, volume_names: set[str], init: bool = False
) -> Container:
    obj = reader.mapping(value, path)
    reader.check_fields(
        obj, path, known=CONTAINER_FIELDS + (("restartPolicy",) if init else ()), ignored=CONTAINER_IGNORED,
        unsupported=tuple(f for f in CONTAINER_UNSUPPORTED if not (init and f == "restartPolicy")),
    )
    restart_policy = None
    if init and reader.get(obj, "restartPolicy", path) is not MISSING:
        restart_policy = reader.choice(obj, "restartPolicy", path, ("Always",), default="Always")
    if init and restart_policy is None:  # as Kubernetes validates a plain init container
        for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
            if reader.get(obj, key, path) is not MISSING:
                raise reader.fail(path + (key,), "may not be set for init containers without restartPolicy: "
                                                 "Always")
    name = reader.string(obj, "name", path, required=True)
    reader.check_name(name, path + ("name",), names.dns1123_label)
    image = reader.string(obj, "image", path, required=True, allow_empty=False)
    assert name is not None and image is not None
    if image != image.strip() or any(c.isspace() for c in image):
        raise reader.fail(path + ("image",), f'invalid image reference "{image}": must not contain spaces')
    pull_policy = reader.choice(
        obj, "imagePullPolicy", path, ("Always", "IfNotPresent", "Never"), default=default_pull_policy(image)
    )
    ports = _read_ports(reader, obj, path)
    working_dir = reader.string(obj, "workingDir", path)
    probes = {
        key: read_probe(reader, obj, key, path, ports=ports)
        for key in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    return Container(
        name=name,
        image=image,
        image_pull_policy=cast(Any, pull_policy),
        command=reader.strings(obj, "command", path),
        args=reader.strings(obj, "args", path),
        env=_read_env(reader, obj, path),
        ports=ports,
        resources=_read_resources(reader, obj, path),
        volume_mounts=_read_mounts(reader, obj, path, volume_names=volume_names),
        liveness_probe=probes["livenessProbe"],
        readiness_probe=probes["readinessProbe"],
        startup_probe=probes["startupProbe"],
        pre_stop=read_pre_stop(reader, obj, path),
        working_dir=working_dir or None,
        env_from=read_env_from(reader, obj, path),
        security_context=read_container_security(reader, obj, path),
        restart_policy=cast(Any, restart_policy),
        stdin=reader.boolean(obj, "stdin", path),
        stdin_once=reader.boolean(obj, "stdinOnce", path),
        tty=reader.boolean(obj, "tty", path),
    )


def _read_ports(reader: DocumentReader, obj: Mapping[str, Any], path: FieldPath) -> tuple[ContainerPort, ...]:
    ports: list[ContainerPort] = []
    for i, item in enumerate(reader.sequence(obj, "ports", path)):
        ppath = path + ("ports", i)
        port = reader.mapping(item, ppath)
        reader.check_fields(
            port, ppath, known=("containerPort", "name", "protocol", "hostPort", "hostIP")
        )
        number = reader.integer(port, "containerPort", ppath, required=True, minimum=1, maximum=65535)
        name = reader.string(port, "name", ppath)
        reader.check_name(name, ppath + ("name",), names.iana_svc_name, required=False)
        protocol = reader.choice(port, "protocol", ppath, ("TCP", "UDP"), default="TCP")
        assert number is not None
        host_port = reader.integer(port, "hostPort", ppath, minimum=1, maximum=65535)
        host_ip = read_host_ip(reader, port, ppath, host_port)
        ports.append(ContainerPort(container_port=number, name=name or None, protocol=cast(Any, protocol),
                                   host_port=host_port, host_ip=host_ip))
    return tuple(ports)


def read_host_ip(reader: DocumentReader, port: Mapping[str, Any], path: FieldPath, host_port: int | None) -> str | None:
    """`hostIP`: the address a hostPort listens on (else the agent's --external addresses); only with a hostPort."""
    text = reader.string(port, "hostIP", path) or None
    if text is None:
        return None
    if host_port is None:
        raise reader.fail(path + ("hostIP",), "may only be set with hostPort")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise reader.fail(path + ("hostIP",), f'must be a valid IP address, got "{text}"') from None


def _read_env(reader: DocumentReader, obj: Mapping[str, Any], path: FieldPath) -> tuple[EnvVar, ...]:
    env: list[EnvVar] = []
    seen: set[str] = set()
    for i, item in enumerate(reader.sequence(obj, "env", path)):
        epath = path + ("env", i)
        var = reader.mapping(item, epath)
        reader.check_fields(var, epath, known=("name", "value", "valueFrom"))
        name = reader.string(var, "name", epath, required=True, allow_empty=False)
        assert name is not None
        if "=" in name or "\0" in name:
            raise reader.fail(epath + ("name",), f'invalid environment variable name "{name}"')
        if name in seen:
            reader.warn(epath + ("name",), f'duplicate environment variable "{name}": the last value wins')
        seen.add(name)
        value = reader.string(var, "value", epath, default="") or ""
        source = reader.get(var, "valueFrom", epath)
        if source is MISSING:
            env.append(EnvVar(name=name, value=value))
            continue
        if value:
            raise reader.fail(epath + ("valueFrom",), "may not be specified when `value` is not empty")
        env.append(_read_value_from(reader, reader.mapping(source, epath + ("valueFrom",)), epath, name))
    return tuple(env)


# the downward API's fields an env var can take (the Kubernetes list)
_FIELD_PATH = re.compile(r"metadata\.(name|namespace|uid)|metadata\.(labels|annotations)\['[^']+'\]"
                         r"|spec\.(nodeName|serviceAccountName)|status\.(podIP|podIPs|hostIP|hostIPs)")
_RESOURCES = ("limits.cpu", "limits.memory", "requests.cpu", "requests.memory")


def _read_value_from(
    reader: DocumentReader, source: Mapping[str, Any], epath: FieldPath, name: str
) -> EnvVar:
    vpath = epath + ("valueFrom",)
    reader.check_fields(source, vpath, known=("fieldRef", "resourceFieldRef", *KEY_REFS),
                        unsupported=("fileKeyRef",))
    refs = [key for key in ("fieldRef", "resourceFieldRef", *KEY_REFS) if reader.get(source, key, vpath) is not MISSING]
    if len(refs) != 1:
        raise reader.fail(vpath, "exactly one of fieldRef, resourceFieldRef, configMapKeyRef or secretKeyRef is "
                                 "required")
    if refs[0] in KEY_REFS:
        return EnvVar(name=name, key_ref=read_key_ref(reader, source, refs[0], vpath))
    rpath = vpath + (refs[0],)
    ref = reader.mapping(source[refs[0]], rpath)
    if refs[0] == "fieldRef":
        reader.check_fields(ref, rpath, known=("fieldPath", "apiVersion"))
        field = reader.string(ref, "fieldPath", rpath, required=True, allow_empty=False)
        assert field is not None
        if not _FIELD_PATH.fullmatch(field):
            raise reader.fail(rpath + ("fieldPath",),
                              f'unsupported value "{field}" (supported: metadata.name, metadata.namespace, '
                              "metadata.uid, metadata.labels['KEY'], metadata.annotations['KEY'], "
                              "spec.nodeName, spec.serviceAccountName, status.podIP, status.podIPs, "
                              "status.hostIP, status.hostIPs)")
        return EnvVar(name=name, field_path=field)
    return EnvVar(name=name, resource_field=read_resource_field_ref(reader, ref, rpath))


def read_resource_field_ref(reader: DocumentReader, ref: Mapping[str, Any], rpath: FieldPath) -> ResourceFieldRef:
    reader.check_fields(ref, rpath, known=("resource", "containerName", "divisor"))
    reader.get(ref, "resource", rpath, required=True)
    resource = reader.choice(ref, "resource", rpath, _RESOURCES, default="")
    container = reader.string(ref, "containerName", rpath, default="") or ""
    divisor_text = ref.get("divisor", "1")
    try:
        divisor = (parse_cpu if resource.endswith("cpu") else parse_memory)(divisor_text)
    except QuantityError as error:
        raise reader.fail(rpath + ("divisor",), str(error)) from None
    if divisor <= 0:
        raise reader.fail(rpath + ("divisor",), f"must be greater than zero, got {divisor_text!r}")
    return ResourceFieldRef(cast(Any, resource), container, divisor)


def _read_resources(reader: DocumentReader, obj: Mapping[str, Any], path: FieldPath) -> Resources:
    value = reader.get(obj, "resources", path)
    if value is MISSING:
        return Resources()
    rpath = path + ("resources",)
    resources = reader.mapping(value, rpath)
    reader.check_fields(resources, rpath, known=("limits", "requests"), unsupported=("claims",))
    limits = _read_resource_list(reader, resources, "limits", rpath)
    requests = _read_resource_list(reader, resources, "requests", rpath)
    # as Kubernetes: a request left out defaults to its limit, and may not exceed it
    requests = ResourceList(
        cpu_millicores=requests.cpu_millicores
        if requests.cpu_millicores is not None
        else limits.cpu_millicores,
        memory_bytes=requests.memory_bytes if requests.memory_bytes is not None else limits.memory_bytes,
    )
    for field, key in (("cpu_millicores", "cpu"), ("memory_bytes", "memory")):
        limit, request = getattr(limits, field), getattr(requests, field)
        if limit is not None and request is not None and request > limit:
            raise reader.fail(rpath + ("requests", key), f"must be less than or equal to the {key} limit")
    return Resources(limits=limits, requests=requests)


def _read_resource_list(
    reader: DocumentReader, obj: Mapping[str, Any], key: str, path: FieldPath
) -> ResourceList:
    value = reader.get(obj, key, path)
    if value is MISSING:
        return ResourceList()
    lpath = path + (key,)
    amounts = reader.mapping(value, lpath)
    cpu: int | None = None
    memory: int | None = None
    for name, amount in amounts.items():
        qpath = lpath + (name,)
        if name == "ephemeral-storage":
            reader.warn(qpath, "not enforced (ignored)")
            continue
        if name not in ("cpu", "memory"):
            raise reader.fail(qpath, "not supported (meshd supports cpu and memory)")
        try:
            if name == "cpu":
                cpu = parse_cpu(amount)
            else:
                memory = parse_memory(amount)
        except QuantityError as exc:
            raise reader.fail(qpath, str(exc)) from None
        if name == "memory" and isinstance(amount, str) and amount.endswith("m"):
            reader.warn(
                qpath, f'"{amount}" is millibytes ("m" means 1/1000); did you mean "{amount[:-1]}Mi"?'
            )
    return ResourceList(cpu_millicores=cpu, memory_bytes=memory)


def _read_mounts(
    reader: DocumentReader, obj: Mapping[str, Any], path: FieldPath, *, volume_names: set[str]
) -> tuple[VolumeMount, ...]:
    mounts: list[VolumeMount] = []
    paths: set[str] = set()
    for i, item in enumerate(reader.sequence(obj, "volumeMounts", path)):
        mpath = path + ("volumeMounts", i)
        mount = reader.mapping(item, mpath)
        reader.check_fields(
            mount,
            mpath,
            known=("name", "mountPath", "readOnly", "subPath"),
            unsupported=("subPathExpr", "mountPropagation", "recursiveReadOnly"),
        )
        name = reader.string(mount, "name", mpath, required=True, allow_empty=False)
        assert name is not None
        if name not in volume_names:
            raise reader.fail(mpath + ("name",), f'no volume named "{name}" in spec.volumes')
        mount_path = reader.string(mount, "mountPath", mpath, required=True, allow_empty=False)
        assert mount_path is not None
        if not mount_path.startswith("/"):
            raise reader.fail(mpath + ("mountPath",), f'must be an absolute path, got "{mount_path}"')
        if mount_path in paths:
            raise reader.fail(mpath + ("mountPath",), f'duplicate mount path "{mount_path}"')
        paths.add(mount_path)
        mounts.append(
            VolumeMount(name=name, mount_path=mount_path, read_only=reader.boolean(mount, "readOnly", mpath),
                        sub_path=check_sub_path(reader, mount, mpath))
        )
    return tuple(mounts)
