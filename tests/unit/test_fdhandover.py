"""The listening-socket handover: its messages (table tests), the agent's keeper deciding which fds to hold,
and a sidecar's FdServer handing a real listening socket to a keeper over a real Unix socket."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from meshd.fdhandover import FdKeeper
from meshd.model.handover import (
    decode,
    decode_inherited,
    encode,
    encode_inherited,
    handover_path,
)
from sidecar.handover import FdServer

KEY = ("127.0.0.5", 80, "TCP")
OTHER = ("127.0.0.6", 53, "UDP")


@pytest.mark.parametrize(("data", "expected"), [
    (encode("add", KEY), ("add", KEY)),
    (encode("del", OTHER), ("del", OTHER)),
    (encode("synced"), ("synced", None)),
])
def test_messages_round_trip(data: bytes, expected: tuple) -> None:
    assert decode(data) == expected


@pytest.mark.parametrize("data", [
    b"", b"not json", b"[]", b'{"op": "rm", "key": ["a", 1, "TCP"]}', b'{"op": "add"}',
    b'{"op": "add", "key": ["a", "80", "TCP"]}', b'{"op": "add", "key": ["a", 80, "SCTP"]}',
    b'{"op": "add", "key": ["a", true, "TCP"]}',
])
def test_malformed_messages_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode(data)


def test_inherited_fds_round_trip_and_malformed_lists_are_refused() -> None:
    fds = {KEY: 7, OTHER: 9}
    assert decode_inherited(encode_inherited(fds)) == fds
    for bad in ("", "{}", "[[1, 2]]", '[["7", "a", 1, "TCP"]]', '[[7, "a", 1, "ICMP"]]'):
        with pytest.raises(ValueError):
            decode_inherited(bad)


def test_a_long_state_dir_disables_the_handover(tmp_path: Path) -> None:
    assert handover_path(tmp_path) == str(tmp_path.resolve() / "sidecar-fds.sock")
    assert handover_path(tmp_path / ("x" * 120)) is None


def _open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def test_the_keeper_replaces_deletes_and_drops_what_a_new_snapshot_does_not_confirm() -> None:
    keeper = FdKeeper("/nonexistent")
    fds = [os.dup(0) for _ in range(4)]
    keeper.apply("add", KEY, fds[0], {})
    keeper.apply("add", OTHER, fds[1], {})
    stale, keeper.fds = keeper.fds, {}  # a new connection: the old fds are stale until confirmed
    keeper.apply("add", KEY, fds[2], stale)  # confirmed (a new dup of the same socket): the old dup closes
    assert not _open(fds[0]) and keeper.fds == {KEY: fds[2]} and stale == {OTHER: fds[1]}
    keeper.apply("synced", None, None, stale)  # OTHER's Service went away while no sidecar ran
    assert not _open(fds[1]) and stale == {}
    keeper.apply("add", OTHER, fds[3], {})
    keeper.apply("del", OTHER, None, {})
    assert not _open(fds[3]) and keeper.fds == {KEY: fds[2]}
    passed = keeper.dups()  # what a new sidecar gets: its own dups, closed by the caller
    assert list(passed) == [KEY] and passed[KEY] != fds[2] and _open(passed[KEY])
    os.close(passed[KEY])
    keeper.close()
    assert not _open(fds[2]) and keeper.fds == {}


async def test_a_sidecar_hands_its_listening_socket_to_the_keeper(tmp_path: Path) -> None:
    path = str(tmp_path / "fds.sock")
    server = FdServer(path, {})
    listening = socket.create_server(("127.0.0.1", 0))
    key = ("127.0.0.1", listening.getsockname()[1], "TCP")
    server.register(key, listening)
    serving = asyncio.create_task(server.run())
    keeper = FdKeeper(path, retry=0.01)
    following = asyncio.create_task(keeper.run())
    try:
        for _ in range(500):
            if key in keeper.fds:
                break
            await asyncio.sleep(0.01)
        assert (await asyncio.to_thread(os.stat, path)).st_mode & 0o077 == 0  # owner only
        assert not os.get_inheritable(keeper.fds[key])  # close-on-exec: no pod inherits it
        held = socket.socket(fileno=os.dup(keeper.fds[key]))
        assert held.getsockname() == listening.getsockname()  # the same socket
        held.close()
        listening.close()
        server.unregister(key)  # the Service went away: the keeper closes its dup too
        for _ in range(500):
            if key not in keeper.fds:
                break
            await asyncio.sleep(0.01)
        assert key not in keeper.fds
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(key[:2], timeout=2).close()
    finally:
        for task in (serving, following):
            task.cancel()
        await asyncio.gather(serving, following, return_exceptions=True)
        keeper.close()
