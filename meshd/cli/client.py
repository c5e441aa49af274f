"""A small blocking client for the agent's HTTP API (stdlib only, so the CLI starts fast)."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

DEFAULT_API = "http://127.0.0.1:7700"


class AgentUnreachable(Exception):
    """The agent did not answer at all (refused, unresolvable, timed out, closed)."""

    def __init__(self, base_url: str, reason: str) -> None:
        super().__init__(f"cannot reach the agent at {base_url}: {reason} — is `meshd agent` running?")
        self.base_url = base_url
        self.reason = reason


class ApiError(Exception):
    """The agent answered with an error status; `message` is what it said."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def resolve_api_url(value: str | None, env: Mapping[str, str]) -> str:
    """The agent's base URL from --api, else MESHD_API, else the default; accepts a URL or host:port."""
    text = (value or env.get("MESHD_API") or DEFAULT_API).strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(
            f"invalid agent address {value or env.get('MESHD_API')!r}: expected http://HOST:PORT or HOST:PORT"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    try:
        port = parts.port or 7700
    except ValueError as exc:
        raise ValueError(f"invalid agent address {text!r}: {exc}") from None
    return f"http://{host}:{port}"


def listen_address(value: str | None, env: Mapping[str, str]) -> str:
    """The HOST:PORT form of an agent address (for `meshd agent --api`)."""
    url = resolve_api_url(value, env)
    return url.removeprefix("http://")


def error_message(status: int, reason: str, body: bytes) -> str:
    """The message in an error answer: JSON {"error"} or a Kubernetes Status {"message"}, else the text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error", "message"):
            if isinstance(data.get(key), str) and data[key]:
                return data[key]
    return text or f"HTTP {status} {reason}".strip()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host ({exc.strerror or exc})"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
        return "the connection was closed"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over the agent's Unix socket."""

    def __init__(self, path: str, *, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class ApiClient:
    """Requests to the agent; raises AgentUnreachable or ApiError, never a raw socket error. With `token`,
    every request carries it; with `unix_socket`, requests go there (TCP if nothing listens on it)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, token: str | None = None,
                 unix_socket: str | None = None) -> None:
        self.base_url = base_url
        parts = urlsplit(base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 7700
        self._timeout = timeout
        self._token = token
        self._unix_socket = unix_socket

    def _connect(self, timeout: float | None) -> http.client.HTTPConnection:
        if self._unix_socket is not None:
            conn = UnixHTTPConnection(self._unix_socket, timeout=timeout)
            try:
                conn.connect()
                return conn
            except OSError:  # a socket left by an agent that is gone: TCP answers or says why not
                conn.close()
                self._unix_socket = None
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    @staticmethod
    def _target(path: str, query: Mapping[str, Any] | None) -> str:
        params = {k: v for k, v in (query or {}).items() if v is not None and v is not False}
        return f"{path}?{urlencode(params)}" if params else path

    def _open(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None,
        body: bytes | None,
        content_type: str | None,
        timeout: float | None,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        try:
            conn = self._connect(timeout)
        except (OSError, http.client.HTTPException) as exc:
            raise AgentUnreachable(self.base_url, _reason(exc)) from None
        headers = {"Accept": "application/json"}
        if self._token and self._unix_socket is None:
            headers["Authorization"] = f"Bearer {self._token}"
        if content_type:
            headers["Content-Type"] = content_type
        try:
            conn.request(method, self._target(path, query), body=body, headers=headers)
            return conn, conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise AgentUnreachable(self.base_url, _reason(exc)) from None

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> Response:
        """One request; an error status raises ApiError with the agent's message."""
        conn, resp = self._open(
            method, path, query=query, body=body, content_type=content_type, timeout=self._timeout
        )
        try:
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise AgentUnreachable(self.base_url, _reason(exc)) from None
        finally:
            conn.close()
        if resp.status >= 400:
            raise ApiError(resp.status, error_message(resp.status, resp.reason, data))
        return Response(resp.status, data, resp.getheader("Content-Type", ""))

    def get_json(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        return _decode(self.request("GET", path, query=query))

    def send_json(self, method: str, path: str, payload: Any, query: Mapping[str, Any] | None = None) -> Any:
        body = json.dumps(payload).encode()
        return _decode(self.request(method, path, query=query, body=body, content_type="application/json"))

    def post_yaml(self, path: str, text: str, query: Mapping[str, Any] | None = None) -> Any:
        return _decode(
            self.request("POST", path, query=query, body=text.encode(), content_type="application/yaml")
        )

    def stream(self, path: str, query: Mapping[str, Any] | None = None) -> Iterator[bytes]:
        """A streamed answer (watch, log -f) chunk by chunk as it arrives; ends when the agent closes it."""
        conn, resp = self._open("GET", path, query=query, body=None, content_type=None, timeout=self._timeout)
        try:
            if resp.status >= 400:
                raise ApiError(resp.status, error_message(resp.status, resp.reason, resp.read()))
            if conn.sock is not None:
                conn.sock.settimeout(None)  # a quiet watch is not an error
            while True:
                try:
                    chunk = resp.read1(65536)
                except (OSError, http.client.HTTPException) as exc:
                    raise AgentUnreachable(self.base_url, _reason(exc)) from None
                if not chunk:
                    return
                yield chunk
        finally:
            conn.close()

    def stream_json_lines(self, path: str, query: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """An ndjson stream as decoded objects (blank lines skipped)."""
        pending = b""
        for chunk in self.stream(path, query):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    yield _json_line(line)
        if pending.strip():
            yield _json_line(pending)


def _json_line(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        raise ApiError(0, f"the agent sent a line that is not JSON: {line[:200]!r}") from None


def _decode(resp: Response) -> Any:
    if not resp.body.strip():
        return None
    try:
        return json.loads(resp.body)
    except ValueError:
        return resp.body.decode("utf-8", "replace")
