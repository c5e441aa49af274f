"""The API's access policy as a table: token, Unix socket owner, open reads, content types, cross-site."""

from __future__ import annotations

import os
import stat

import pytest

from meshd.api.auth import decide, load_or_create_token, writable_content_type

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
YAML = {"Content-Type": "application/yaml"}


@pytest.mark.parametrize(
    ("method", "path", "headers", "local", "body", "expected"),
    [
        ("GET", "/api/v1/pods", {}, False, False, 401),
        ("GET", "/api/v1/pods", {"Authorization": "Bearer wrong"}, False, False, 401),
        ("GET", "/api/v1/pods", {"Authorization": f"Basic {TOKEN}"}, False, False, 401),
        ("GET", "/api/v1/pods", {"Authorization": f"bearer {TOKEN}"}, False, False, None),
        ("GET", "/api/v1/pods", AUTH, False, False, None),
        ("GET", "/api/v1/pods", {}, True, False, None),  # the socket's owner
        ("GET", "/metrics", {}, False, False, None),
        ("GET", "/healthz", {}, False, False, None),
        ("GET", "/v1/prometheus/targets", {}, False, False, None),
        ("POST", "/healthz", YAML, False, True, 401),  # open for reading only
        ("GET", "/v1/watch/endpoints", {}, False, False, 401),
        ("POST", "/v1/drain", {"Content-Type": "application/json"}, False, True, 401),
        ("POST", "/v1/apply", {}, False, True, 401),
        ("POST", "/v1/apply", {**AUTH, **YAML}, False, True, None),
        ("POST", "/v1/apply", {**AUTH, "Content-Type": "text/plain"}, False, True, 415),
        ("POST", "/v1/apply", {**AUTH}, False, True, None),  # no type: JSON, as the API server reads it
        ("POST", "/v1/apply", {"Content-Type": "application/x-www-form-urlencoded"}, True, True, 415),
        ("PATCH", "/x/scale", {**AUTH, "Content-Type": "application/merge-patch+json"}, False, True, None),
        ("DELETE", "/x", AUTH, False, False, None),  # no body: nothing to interpret
        ("POST", "/v1/apply", {**AUTH, **YAML, "Origin": "http://evil.example"}, False, True, 403),
        ("POST", "/v1/apply", {**YAML, "Origin": "null"}, True, True, 403),
        ("GET", "/metrics", {"Sec-Fetch-Site": "cross-site"}, False, False, 403),
        ("GET", "/api/v1/pods", {**AUTH, "Sec-Fetch-Site": "same-site"}, False, False, 403),
        ("GET", "/api/v1/pods", {**AUTH, "Sec-Fetch-Site": "none"}, False, False, None),
        ("POST", "/v1/apply", {**AUTH, **YAML, "Origin": "http://127.0.0.1:8080"}, False, True, 403),
        ("POST", "/v1/apply", {**AUTH, **YAML, "Origin": "http://127.0.0.1:7700"}, False, True, None),
        ("POST", "/v1/apply", {**AUTH, **YAML, "Sec-Fetch-Site": "same-origin"}, False, True, None),
    ],
)
def test_decide(method, path, headers, local, body, expected):
    refusal = decide(method=method, path=path, headers=headers, host="127.0.0.1:7700", token=TOKEN,
                     local_owner=local, has_body=body)
    assert (refusal.code if refusal else None) == expected


@pytest.mark.parametrize(
    ("content_type", "ok"),
    [
        ("application/json", True), ("application/json; charset=utf-8", True), ("application/yaml", True),
        ("application/vnd.kubernetes.protobuf", True), ("application/apply-patch+yaml", True),
        ("application/strategic-merge-patch+json", True), ("application/json-patch+json", True),
        ("application/foo+json", True), ("text/plain", False), ("multipart/form-data", False), ("", False),
    ],
)
def test_writable_content_types(content_type, ok):
    assert writable_content_type(content_type) is ok


def test_the_token_is_made_once_owner_only_and_kept(tmp_path):
    token = load_or_create_token(tmp_path)
    assert len(token) >= 40
    assert stat.S_IMODE(os.stat(tmp_path / "token").st_mode) == 0o600
    assert load_or_create_token(tmp_path) == token
    os.chmod(tmp_path / "token", 0o644)
    assert load_or_create_token(tmp_path) == token
    assert stat.S_IMODE(os.stat(tmp_path / "token").st_mode) == 0o600
    (tmp_path / "token").write_text("\n")
    assert load_or_create_token(tmp_path) not in ("", token)
