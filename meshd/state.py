"""The state dir and small files in it written atomically (temp file, fsync, rename). Desired state itself lives
in the object store (meshd/store, STATE/store.db)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

TOKEN_FILE = "token"  # the API's bearer token (0600)
SOCKET_FILE = "api.sock"  # the API's Unix socket (0600: its owner's)
CA_FILE = "ca.pem"  # the API's private certificate authority (kubeconfig's certificate-authority-data)
CA_KEY_FILE = "ca-key.pem"  # its key (0600)
CERT_FILE = "api.pem"  # the API's serving certificate, signed by the CA
CERT_KEY_FILE = "api-key.pem"  # its key (0600)
API_ADDRESS_FILE = "api-address"  # where the agent serves its API (HOST:PORT), for `meshd kubeconfig`


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "meshd"


def write_private(path: Path, data: bytes) -> None:
    """Keys, certificates, tokens: written whole or not at all, mode 0600 from the start (mkstemp's), in a
    directory made 0700."""
    write_atomically(path, data, directory_mode=0o700)


def write_atomically(path: Path, data: bytes, *, directory_mode: int = 0o777) -> None:
    """Writes `path` whole or not at all (a temp file of mode 0600 in the same directory, fsynced, renamed, the
    directory fsynced)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=directory_mode)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def api_address_of(host: str, port: int) -> str:
    """The address a client on this machine dials for an API bound to `host`: a wildcard is dialled on loopback."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def read_api_address(state_dir: Path) -> str | None:
    """The API address the agent of this state dir recorded when it last started (None: never, or unreadable)."""
    try:
        return (state_dir / API_ADDRESS_FILE).read_text().strip() or None
    except (OSError, UnicodeDecodeError):
        return None
