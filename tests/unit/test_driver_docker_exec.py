"""Docker's exec stream demultiplexing, as a table."""

from __future__ import annotations

import pytest

from meshd.driver.docker_exec import demux_docker


def _docker(stream: int, payload: bytes) -> bytes:
    return bytes((stream, 0, 0, 0)) + len(payload).to_bytes(4, "big") + payload


@pytest.mark.parametrize(("buffer", "frames", "rest"), [
    (b"", [], b""),
    (_docker(1, b"out"), [(1, b"out")], b""),
    (_docker(2, b"err") + _docker(1, b"o"), [(2, b"err"), (1, b"o")], b""),
    (_docker(1, b"out")[:5], [], _docker(1, b"out")[:5]),
    (_docker(1, b"out") + _docker(2, b"err")[:9], [(1, b"out")], _docker(2, b"err")[:9]),
    (_docker(1, b""), [], b""),
    (_docker(0, b"in"), [(1, b"in")], b""),
])
def test_demux_docker(buffer, frames, rest):
    assert demux_docker(buffer) == (frames, rest)
