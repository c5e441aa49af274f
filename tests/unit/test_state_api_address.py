"""The API address an agent records for `meshd kubeconfig`: a wildcard bind is dialled on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshd.state import API_ADDRESS_FILE, api_address_of, read_api_address


@pytest.mark.parametrize(("host", "port", "address"), [
    ("127.0.0.1", 7700, "127.0.0.1:7700"),
    ("0.0.0.0", 7790, "127.0.0.1:7790"),
    ("", 7700, "127.0.0.1:7700"),
    ("10.1.2.3", 80, "10.1.2.3:80"),
    ("::", 7700, "[::1]:7700"),
    ("fd00::1", 7700, "[fd00::1]:7700"),
])
def test_api_address_of(host: str, port: int, address: str) -> None:
    assert api_address_of(host, port) == address


def test_read_api_address(tmp_path: Path) -> None:
    assert read_api_address(tmp_path) is None
    (tmp_path / API_ADDRESS_FILE).write_text("127.0.0.1:7790\n")
    assert read_api_address(tmp_path) == "127.0.0.1:7790"
