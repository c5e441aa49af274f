"""Probes (httpGet, tcpSocket, grpc, exec) with Kubernetes' defaults and sub-second periods; preStop hooks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from meshd.manifests import names
from meshd.manifests.errors import FieldPath
from meshd.manifests.reader import MISSING, DocumentReader
from meshd.model.objects import (
    ContainerPort,
    ExecAction,
    GRPCAction,
    HTTPGetAction,
    PreStop,
    Probe,
    ProbeHandler,
    TCPSocketAction,
)

MIN_PERIOD_SECONDS = 0.05
PROBE_FIELDS = (
    "httpGet",
    "tcpSocket",
    "grpc",
    "exec",
    "initialDelaySeconds",
    "periodSeconds",
    "timeoutSeconds",
    "successThreshold",
    "failureThreshold",
)


def read_port_ref(
    reader: DocumentReader, value: Any, path: FieldPath, *, ports: tuple[ContainerPort, ...] | None
) -> int | str:
    """An IntOrString port: a number 1-65535, or a port name (which must name one of `ports`, if given)."""
    if isinstance(value, str):
        problem = names.iana_svc_name(value)
        if problem:
            raise reader.fail(path, f'invalid port name "{value}": {problem}')
        if ports is not None and not any(p.name == value for p in ports):
            raise reader.fail(path, f'"{value}" names no port of this container')
        return value
    if value is None:
        raise reader.fail(path, "required field is missing")
    return reader.as_integer(value, path, minimum=1, maximum=65535)


def read_probe(
    reader: DocumentReader,
    obj: Mapping[str, Any],
    key: str,
    path: FieldPath,
    *,
    ports: tuple[ContainerPort, ...],
) -> Probe | None:
    value = reader.get(obj, key, path)
    if value is MISSING:
        return None
    ppath = path + (key,)
    probe = reader.mapping(value, ppath)
    reader.check_fields(
        probe,
        ppath,
        known=PROBE_FIELDS,
        ignored={"terminationGracePeriodSeconds": "ignored: the pod's terminationGracePeriodSeconds applies"},
    )
    handler = read_handler(reader, probe, ppath, ports=ports, what="probe")
    # as Kubernetes' defaulting: 0 (or absent) means the default
    period = reader.number(probe, "periodSeconds", ppath, default=10) or 10
    if period < MIN_PERIOD_SECONDS:
        raise reader.fail(ppath + ("periodSeconds",), f"must be at least {MIN_PERIOD_SECONDS}, got {period}")
    timeout = reader.number(probe, "timeoutSeconds", ppath, default=1) or 1
    success = reader.integer(probe, "successThreshold", ppath, default=1, minimum=0) or 1
    failure = reader.integer(probe, "failureThreshold", ppath, default=3, minimum=0) or 3
    if key != "readinessProbe" and success != 1:
        raise reader.fail(ppath + ("successThreshold",), f"must be 1 for a {key}")
    return Probe(
        handler=handler,
        initial_delay_seconds=reader.number(probe, "initialDelaySeconds", ppath, default=0),
        period_seconds=period,
        timeout_seconds=timeout,
        success_threshold=success,
        failure_threshold=failure,
    )


def read_handler(
    reader: DocumentReader,
    obj: Mapping[str, Any],
    path: FieldPath,
    *,
    ports: tuple[ContainerPort, ...],
    what: str,
) -> ProbeHandler:
    """Exactly one of httpGet, tcpSocket, grpc, exec."""
    present = [k for k in ("httpGet", "tcpSocket", "grpc", "exec") if obj.get(k) is not None]
    if not present:
        raise reader.fail(path, f"a {what} needs one handler: httpGet, tcpSocket, grpc or exec")
    if len(present) > 1:
        raise reader.fail(
            path + (present[1],), f"a {what} may have only one handler (found {', '.join(present)})"
        )
    kind = present[0]
    hpath = path + (kind,)
    handler = reader.mapping(obj[kind], hpath)
    if kind == "exec":
        reader.check_fields(handler, hpath, known=("command",))
        command = reader.strings(handler, "command", hpath)
        if not command:
            raise reader.fail(hpath + ("command",), "required field is missing")
        return ExecAction(command=command)
    if kind == "grpc":
        reader.check_fields(handler, hpath, known=("port", "service"))
        port = handler.get("port")
        if port is None:
            raise reader.fail(hpath + ("port",), "required field is missing")
        if isinstance(port, str):
            raise reader.fail(hpath + ("port",), f'must be a port number (a grpc probe takes no port name), got "{port}"')
        return GRPCAction(
            port=reader.as_integer(port, hpath + ("port",), minimum=1, maximum=65535),
            service=reader.string(handler, "service", hpath) or "",
        )
    if kind == "tcpSocket":
        reader.check_fields(handler, hpath, known=("port",), unsupported=("host",))
        return TCPSocketAction(
            port=read_port_ref(reader, handler.get("port"), hpath + ("port",), ports=ports)
        )
    reader.check_fields(handler, hpath, known=("path", "port", "host", "scheme", "httpHeaders"))
    url_path = reader.string(handler, "path", hpath) or "/"
    if not url_path.startswith("/"):
        raise reader.fail(hpath + ("path",), f'must start with "/", got "{url_path}"')
    headers: list[tuple[str, str]] = []
    for i, item in enumerate(reader.sequence(handler, "httpHeaders", hpath)):
        header_path = hpath + ("httpHeaders", i)
        header = reader.mapping(item, header_path)
        reader.check_fields(header, header_path, known=("name", "value"))
        header_name = reader.string(header, "name", header_path, required=True, allow_empty=False)
        assert header_name is not None
        headers.append((header_name, reader.string(header, "value", header_path, default="") or ""))
    return HTTPGetAction(
        port=read_port_ref(reader, handler.get("port"), hpath + ("port",), ports=ports),
        path=url_path,
        host=reader.string(handler, "host", hpath) or None,
        scheme=cast(Any, reader.choice(handler, "scheme", hpath, ("HTTP", "HTTPS"), default="HTTP")),
        http_headers=tuple(headers),
    )


def read_pre_stop(reader: DocumentReader, obj: Mapping[str, Any], path: FieldPath) -> PreStop | None:
    value = reader.get(obj, "lifecycle", path)
    if value is MISSING:
        return None
    lpath = path + ("lifecycle",)
    lifecycle = reader.mapping(value, lpath)
    reader.check_fields(lifecycle, lpath, known=("preStop",), unsupported=("postStart", "stopSignal"))
    pre_stop_value = reader.get(lifecycle, "preStop", lpath)
    if pre_stop_value is MISSING:
        return None
    ppath = lpath + ("preStop",)
    pre_stop = reader.mapping(pre_stop_value, ppath)
    reader.check_fields(pre_stop, ppath, known=("exec", "sleep"), unsupported=("httpGet", "tcpSocket"))
    present = [k for k in ("exec", "sleep") if pre_stop.get(k) is not None]
    if not present:
        raise reader.fail(ppath, "a preStop hook needs one handler: exec or sleep")
    if len(present) > 1:
        raise reader.fail(ppath + ("sleep",), "a preStop hook may have only one handler (found exec, sleep)")
    if present[0] == "exec":
        epath = ppath + ("exec",)
        exec_obj = reader.mapping(pre_stop["exec"], epath)
        reader.check_fields(exec_obj, epath, known=("command",))
        command = reader.strings(exec_obj, "command", epath)
        if not command:
            raise reader.fail(epath + ("command",), "required field is missing")
        return PreStop(exec_command=command)
    spath = ppath + ("sleep",)
    sleep = reader.mapping(pre_stop["sleep"], spath)
    reader.check_fields(sleep, spath, known=("seconds",))
    if sleep.get("seconds") is None:
        raise reader.fail(spath + ("seconds",), "required field is missing")
    return PreStop(sleep_seconds=reader.number(sleep, "seconds", spath, default=0))
