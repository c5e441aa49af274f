"""pods/log options as kubectl sends them, checked as the API server checks them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meshd.api.podlogs import LogOptions, clip, log_options

NOW = 1_800_000_000.0


@pytest.mark.parametrize(("query", "expected"), [
    ({}, LogOptions()),
    ({"follow": "true", "container": "web"}, LogOptions(container="web", follow=True)),
    ({"follow": "true", "previous": "true"}, LogOptions(previous=True)),  # a terminated instance ends
    ({"tailLines": "0"}, LogOptions(tail=0)),
    ({"tailLines": "20", "timestamps": "true"}, LogOptions(tail=20, timestamps=True)),
    ({"sinceSeconds": "60"}, LogOptions(since=NOW - 60)),
    ({"sinceTime": "2027-01-15T08:00:00Z"}, LogOptions(since=datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp())),
    ({"limitBytes": "10"}, LogOptions(limit_bytes=10)),
])
def test_options(query, expected):
    assert log_options(query, now=NOW) == expected


@pytest.mark.parametrize(("query", "message"), [
    ({"sinceSeconds": "60", "sinceTime": "2027-01-15T08:00:00Z"}, "at most one of sinceTime or sinceSeconds"),
    ({"sinceSeconds": "0"}, "sinceSeconds: invalid value 0"),
    ({"sinceSeconds": "1m"}, "sinceSeconds: invalid value '1m'"),
    ({"sinceTime": "yesterday"}, "sinceTime: invalid value 'yesterday'"),
    ({"tailLines": "-1"}, "tailLines: invalid value -1"),
    ({"limitBytes": "0"}, "limitBytes: invalid value 0"),
])
def test_bad_options_are_refused(query, message):
    with pytest.raises(ValueError, match=message):
        log_options(query, now=NOW)


@pytest.mark.parametrize(("chunk", "sent", "limit", "expected"), [
    (b"hello", 0, None, b"hello"),
    (b"hello", 0, 3, b"hel"),
    (b"hello", 2, 3, b"h"),
    (b"hello", 3, 3, b""),
    (b"hello", 0, 5, b"hello"),
])
def test_clip(chunk, sent, limit, expected):
    assert clip(chunk, sent, limit) == expected
