"""TLS between an agent and etcd, as etcdctl's `--cacert --cert --key` and k3s' `--datastore-cafile
--datastore-certfile --datastore-keyfile`: `meshd agent --store https://HOST:PORT --store-ca FILE --store-cert FILE
--store-key FILE` verifies etcd's certificate against the CA and presents the client certificate etcd's
`--client-cert-auth --trusted-ca-file` asks for.

Pure decisions here (which flags go together, the one-line reason a TLS failure gets) and the SSL context; the
probe that tells a plain-HTTP etcd from a TLS one is the only I/O."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp


@dataclass(frozen=True)
class StoreTls:
    """The files of `--store-ca`, `--store-cert`, `--store-key` (None: not given)."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    @property
    def given(self) -> bool:
        return any((self.ca, self.cert, self.key))

    def describe_ca(self) -> str:
        return f"--store-ca {self.ca}" if self.ca else "the system's CAs (no --store-ca)"


NO_TLS = StoreTls()


def check_flags(endpoints: list[str], tls: StoreTls) -> None:
    """ValueError when the flags cannot go together: a certificate without its key (or the reverse), TLS files
    for an etcd reached over plain http://."""
    if bool(tls.cert) != bool(tls.key):
        given, missing = ("--store-cert", "--store-key") if tls.cert else ("--store-key", "--store-cert")
        raise ValueError(f"{given} without {missing}: a client certificate needs its key (give both)")
    plain = [e for e in endpoints if e.startswith("http://")]
    if tls.given and plain:
        raise ValueError(f"--store {', '.join(plain)} is plain http:// but TLS files were given (--store-ca, "
                         "--store-cert, --store-key): use --store https://HOST:PORT")


def client_context(tls: StoreTls) -> ssl.SSLContext:
    """The context that verifies etcd against --store-ca (else the system's CAs) and presents --store-cert with
    --store-key; ValueError naming the file that is missing, unreadable or not what it should be."""
    for flag, path in (("--store-ca", tls.ca), ("--store-cert", tls.cert), ("--store-key", tls.key)):
        if path is not None and not Path(path).is_file():
            raise ValueError(f"{flag} {path}: no such file")
        if path is not None:
            try:
                Path(path).read_bytes()
            except OSError as error:
                raise ValueError(f"{flag} {path}: cannot read it ({error.strerror or error})") from None
    try:
        context = ssl.create_default_context(cafile=tls.ca)
    except ssl.SSLError as error:
        raise ValueError(f"--store-ca {tls.ca}: not a PEM CA certificate ({error.reason or error})") from None
    if tls.cert and tls.key:
        try:
            context.load_cert_chain(tls.cert, tls.key)
        except ssl.SSLError as error:
            reason = str(error.reason or error)
            if "KEY_VALUES_MISMATCH" in reason.upper():
                raise ValueError(f"--store-key {tls.key} is not the key of --store-cert {tls.cert}") from None
            raise ValueError(f"--store-cert {tls.cert} / --store-key {tls.key}: not a PEM certificate and its "
                             f"unencrypted key ({reason})") from None
    return context


def _detail(error: BaseException) -> str:
    cause = getattr(error, "certificate_error", None) or getattr(error, "os_error", None) or error
    return str(getattr(cause, "verify_message", "") or getattr(cause, "strerror", "") or cause or
               type(error).__name__)


def tls_reason(endpoint: str, error: BaseException, tls: StoreTls) -> str | None:
    """The one-line reason when `error` (from a request to `endpoint`) is a TLS disagreement that no retry
    mends; None when it is anything else (etcd down, a timeout: the caller retries)."""
    if not endpoint.startswith("https://"):
        return None
    detail = _detail(error)
    if isinstance(error, aiohttp.ClientConnectorCertificateError) and "mismatch" in detail.lower():
        host = endpoint.split("://", 1)[1].rpartition(":")[0]
        return (f"{endpoint}: etcd's certificate does not name {host} ({detail}): make etcd's --cert-file with "
                f"subjectAltName IP:{host} (or DNS:{host}), or reach etcd by a name it has")
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return (f"{endpoint}: etcd's certificate does not verify against {tls.describe_ca()} ({detail}): give "
                "--store-ca the CA that signed etcd's --cert-file")
    text = f"{detail} {error}".upper()
    if "WRONG_VERSION_NUMBER" in text or "RECORD_LAYER_FAILURE" in text or "PACKET_LENGTH_TOO_LONG" in text:
        return plain_https_reason(endpoint)
    if "ALERT" in text and any(word in text for word in ("BAD_CERTIFICATE", "CERTIFICATE_REQUIRED", "UNKNOWN_CA",
                                                          "CERTIFICATE_UNKNOWN", "HANDSHAKE_FAILURE")):
        if not tls.cert:
            return (f"{endpoint}: etcd asks for a client certificate (--client-cert-auth) and none was given: "
                    "pass --store-cert FILE --store-key FILE")
        return (f"{endpoint}: etcd refused the client certificate --store-cert {tls.cert} ({detail}): it must be "
                "signed by the CA of etcd's --trusted-ca-file and allow client auth")
    return None


async def speaks_tls(endpoint: str, timeout: float = 3.0) -> bool | None:
    """Whether the server at `endpoint` answers a TLS handshake (a TLS alert, such as "certificate required",
    counts: it is TLS all the same); None when nothing accepts the connection. Its certificate is not checked:
    nothing is sent but the handshake."""
    host, _, port = endpoint.split("://", 1)[-1].rstrip("/").rpartition(":")
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    except (OSError, TimeoutError, ValueError):
        return None
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    probe = ssl.create_default_context()
    probe.check_hostname, probe.verify_mode = False, ssl.CERT_NONE
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host.strip("[]"), int(port), ssl=probe)
    except ssl.SSLError as error:
        return "ALERT" in str(error).upper()
    except (OSError, TimeoutError, ValueError):
        return False  # it hung up on a ClientHello: no TLS there
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True


def handshake_reason(endpoint: str, context: ssl.SSLContext, tls: StoreTls, timeout: float = 2.0) -> str | None:
    """The one-line reason etcd refuses this client's TLS, from a handshake with the client's own context
    followed by a read (blocking: run it in a thread). Under TLS 1.3 the client's side of the handshake is done
    before etcd has looked at its certificate, so a refused certificate shows only as an alert on the first
    read, and a request already on its way often meets a reset instead, which looks like etcd going away. This
    sends nothing, so the alert arrives as itself. None when etcd keeps the connection open (it accepted us) or
    nothing answers."""
    host, _, port = endpoint.split("://", 1)[-1].rstrip("/").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host.strip("[]")) as conn:
            conn.settimeout(timeout)
            conn.recv(1)
    except ssl.SSLError as error:
        return tls_reason(endpoint, error, tls)
    except (OSError, ValueError):
        return None  # a timeout (it waits for our request: accepted), a reset, nothing listening
    return None


async def scheme_reason(endpoints: list[str], context: ssl.SSLContext | None = None,
                        tls: StoreTls = NO_TLS) -> str | None:
    """The one-line reason when an endpoint's scheme is not what it serves: http:// to a TLS etcd (it hangs up
    on a plain request), https:// to a plain one (it hangs up on a ClientHello); both look like a member going
    away, so this asks with a bare handshake. With the client's `context`, a TLS etcd that refuses the client's
    certificate (or its CA) is found the same way (`handshake_reason`). None when every scheme fits (or nothing
    answers)."""
    for endpoint in endpoints:
        speaks = await speaks_tls(endpoint)
        if endpoint.startswith("http://") and speaks:
            return (f"{endpoint} serves TLS but --store says http://: use --store https://… with --store-ca (and "
                    "--store-cert/--store-key when etcd runs with --client-cert-auth)")
        if endpoint.startswith("https://") and speaks is False:
            return plain_https_reason(endpoint)
        if endpoint.startswith("https://") and speaks and context is not None:
            if reason := await asyncio.to_thread(handshake_reason, endpoint, context, tls):
                return reason
    return None


def plain_https_reason(endpoint: str) -> str:
    return (f"{endpoint} does not speak TLS (a plain-HTTP etcd?): use --store http://… or start etcd with "
            "--cert-file and --key-file")


__all__ = ["NO_TLS", "StoreTls", "check_flags", "client_context", "handshake_reason", "plain_https_reason",
           "scheme_reason", "speaks_tls", "tls_reason"]
