"""Kubernetes name rules (apimachinery validation): each check returns None or what is wrong."""

from __future__ import annotations

import re

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = _QUALIFIED_NAME


def dns1123_label(value: str) -> str | None:
    """A name like a container's, a namespace or a hostname: lowercase alphanumerics and '-', <= 63."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _DNS1123_LABEL.match(value):
        return "must consist of lower case alphanumeric characters or '-', and start and end with one"
    return None


def dns1123_subdomain(value: str) -> str | None:
    """An object name (Pod, Deployment, ReplicaSet): DNS labels joined by '.', <= 253."""
    if len(value) > 253:
        return "must be no more than 253 characters"
    if not _DNS1123_SUBDOMAIN.match(value):
        return (
            "must consist of lower case alphanumeric characters, '-' or '.', "
            "and start and end with an alphanumeric character"
        )
    return None


def path_segment_name(value: str) -> str | None:
    """An RBAC object's name ("system:aggregate-to-edit"): anything but "." or "..", without '/' or '%'."""
    if value in (".", ".."):
        return f"may not be '{value}'"
    if "/" in value or "%" in value:
        return "may not contain '/' or '%'"
    return None


def dns1035_label(value: str) -> str | None:
    """A Service name: a DNS label that starts with a letter, <= 63."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _DNS1035_LABEL.match(value):
        return (
            "must consist of lower case alphanumeric characters or '-', start with a letter "
            "and end with an alphanumeric character"
        )
    return None


def iana_svc_name(value: str) -> str | None:
    """A port name: <= 15 characters, lowercase alphanumerics and '-', at least one letter, no '--'."""
    if len(value) > 15:
        return "must be no more than 15 characters"
    if not _IANA_SVC_NAME.match(value):
        return "must contain only lower case alphanumeric characters or '-', and start and end with one"
    if "--" in value:
        return "must not contain consecutive hyphens"
    if not any(c.isalpha() for c in value):
        return "must contain at least one letter"
    return None


def qualified_name(value: str) -> str | None:
    """A label or annotation key: an optional DNS-subdomain prefix and '/', then a name of <= 63."""
    prefix, slash, name = value.rpartition("/")
    if slash:
        if not prefix:
            return "prefix part must be non-empty"
        problem = dns1123_subdomain(prefix)
        if problem:
            return f"prefix part {problem}"
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _QUALIFIED_NAME.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', "
            "and start and end with an alphanumeric character"
        )
    return None


def label_value(value: str) -> str | None:
    """A label value: empty, or <= 63 alphanumerics, '-', '_' or '.' starting and ending alphanumeric."""
    if value == "":
        return None
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _LABEL_VALUE.match(value):
        return (
            "must consist of alphanumeric characters, '-', '_' or '.', "
            "and start and end with an alphanumeric character"
        )
    return None
