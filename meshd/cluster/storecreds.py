"""What a joining node needs to reach a TLS etcd, handed over in the join answer (meshd.api.join), over the TLS
channel the token's proof already pinned: etcd's CA, and a client certificate and key for etcd's
`--client-cert-auth`. The agents of a cluster hand out the files they were started with (`--store-ca`,
`--store-cert`, `--store-key`, or those their own join gave them): every node presents the same client
certificate to etcd (as every k3s server shares its datastore certificate); etcd cannot tell the nodes apart,
and taking one node's access away means a new client certificate for all.

A joined node keeps them 0600 in STATE/cluster/ (store-ca.crt, store.crt, store.key) next to its node
certificate, and uses them as if given the flags."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshd.state import write_private
from meshd.store.etcdtls import StoreTls

FILES = {"ca": "store-ca.crt", "certificate": "store.crt", "key": "store.key"}  # in STATE/cluster/
_PEM = "-----BEGIN "


@dataclass(frozen=True)
class StoreCredentials:
    """PEM texts (None: not used: the system's CAs, no client certificate)."""

    ca: str | None = None
    certificate: str | None = None
    key: str | None = None

    def to_json(self) -> dict[str, str]:
        return {field: value for field, value in (("ca", self.ca), ("certificate", self.certificate),
                                                  ("key", self.key)) if value is not None}

    @classmethod
    def from_json(cls, body: Any) -> StoreCredentials:
        """The join answer's `storeTLS`; ValueError saying what is wrong with it."""
        if not isinstance(body, Mapping):
            raise ValueError("storeTLS is not an object {ca, certificate, key}")
        values = {field: body.get(field) for field in FILES}
        for field, value in values.items():
            if value is not None and (not isinstance(value, str) or _PEM not in value):
                raise ValueError(f"storeTLS.{field} is not PEM")
        if (values["certificate"] is None) != (values["key"] is None):
            raise ValueError("storeTLS has a client certificate without its key, or a key without its certificate")
        return cls(values["ca"], values["certificate"], values["key"])


def read_credentials(tls: StoreTls) -> StoreCredentials:
    """The files an agent was started with, to hand to joining nodes; OSError when one cannot be read."""
    def text(path: str | None) -> str | None:
        return Path(path).read_text() if path else None

    return StoreCredentials(text(tls.ca), text(tls.cert), text(tls.key))


def save_credentials(directory: Path, credentials: StoreCredentials) -> StoreTls:
    """Writes what the join gave (0600, in a 0700 directory); the files as --store-ca/--store-cert/--store-key."""
    paths: dict[str, str | None] = {}
    for field, name in FILES.items():
        value = getattr(credentials, field)
        if value is None:
            (directory / name).unlink(missing_ok=True)
            paths[field] = None
        else:
            write_private(directory / name, value.encode())
            paths[field] = str(directory / name)
    return StoreTls(paths["ca"], paths["certificate"], paths["key"])


def saved_tls(directory: Path) -> StoreTls:
    """The files a previous join left (an agent restarted with --join uses them again)."""
    def found(name: str) -> str | None:
        return str(directory / name) if (directory / name).is_file() else None

    return StoreTls(found(FILES["ca"]), found(FILES["certificate"]), found(FILES["key"]))


__all__ = ["FILES", "StoreCredentials", "read_credentials", "save_credentials", "saved_tls"]
