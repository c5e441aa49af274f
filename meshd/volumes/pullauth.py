"""imagePullSecrets: the credentials a kubernetes.io/dockerconfigjson (or dockercfg) Secret holds for the registry
of an image, as the kubelet picks them (pure). Never logged: the result is a dict for the engine's pull only."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from typing import Any

from meshd.model.objects import Secret

_DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")


def image_registry(image: str) -> str:
    """"127.0.0.1:5000/app:v1" -> "127.0.0.1:5000"; an image without a registry host is Docker Hub's."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def _host(key: str) -> str:
    """An `auths` key ("https://index.docker.io/v1/", "127.0.0.1:5000", "http://r.example/") -> its host."""
    host = key.split("://", 1)[-1].split("/", 1)[0]
    return "docker.io" if host in _DOCKER_HUB else host


def _auths(secret: Secret) -> dict[str, Any]:
    if secret.type == "kubernetes.io/dockerconfigjson":
        raw = secret.data.get(".dockerconfigjson", b"")
        nested = True
    elif secret.type == "kubernetes.io/dockercfg":
        raw, nested = secret.data.get(".dockercfg", b""), False
    else:
        return {}
    try:
        config = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    auths = config.get("auths") if nested and isinstance(config, dict) else config
    return auths if isinstance(auths, dict) else {}


def registry_auth(image: str, secrets: Iterable[Secret]) -> dict[str, str] | None:
    """{"username", "password"} for the image's registry from the first Secret that has it, or None."""
    registry = image_registry(image)
    for secret in secrets:
        for key, entry in _auths(secret).items():
            if _host(str(key)) != registry or not isinstance(entry, dict):
                continue
            username, password = entry.get("username"), entry.get("password")
            if not username and isinstance(entry.get("auth"), str):
                try:
                    username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    continue
            if username:
                return {"username": str(username), "password": str(password or "")}
    return None
