"""Pure parts of the process driver and the offline image helpers."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path

import pytest

from meshd.driver import make_driver
from meshd.driver.process import exit_status, pick_address, port_env, proc_alive, proc_start_time
from meshd.images.rootfs import is_static_elf
from meshd.model.objects import Container, ContainerPort


def test_port_env_names_the_first_port_and_each_named_one() -> None:
    c = Container(
        name="app", image="x", ports=(ContainerPort(8080, name="http"), ContainerPort(9090, name="admin-api"))
    )
    assert port_env(c) == {"PORT": "8080", "PORT_HTTP": "8080", "PORT_ADMIN_API": "9090"}
    assert port_env(Container(name="app", image="x")) == {}


def test_pick_address_takes_the_lowest_free_skipping_network_and_first_host() -> None:
    net = ipaddress.ip_network("127.213.0.0/29")
    assert pick_address(set(), net) == "127.213.0.2"
    assert pick_address({"127.213.0.2", "127.213.0.3"}, net) == "127.213.0.4"
    with pytest.raises(Exception, match="no free pod address"):
        pick_address({f"127.213.0.{i}" for i in range(2, 7)}, net)


@pytest.mark.parametrize("code, expected", [(0, 0), (3, 3), (-9, 137), (-15, 143)])
def test_exit_status_uses_the_shell_convention_for_signals(code: int, expected: int) -> None:
    assert exit_status(code) == expected


def test_a_process_is_identified_by_pid_and_start_time() -> None:
    start = proc_start_time(os.getpid())
    assert start is not None and proc_alive(os.getpid(), start)
    assert not proc_alive(os.getpid(), start + 1)  # same pid, another process
    assert proc_start_time(2**22 + 1) is None and not proc_alive(2**22 + 1, None)


def test_make_driver_knows_both_drivers(tmp_path: Path) -> None:
    assert make_driver("process", agent_id="a", state_dir=tmp_path).name == "process"
    assert make_driver("docker", agent_id="a").name == "docker"
    with pytest.raises(ValueError, match="unknown driver"):
        make_driver("podman", agent_id="a")


def test_static_elf_detection(tmp_path: Path) -> None:
    assert not is_static_elf(Path(sys.executable).resolve())  # a dynamically linked interpreter
    (tmp_path / "text").write_text("#!/bin/sh\n")
    assert not is_static_elf(tmp_path / "text")
    if Path("/bin/busybox").exists() and "static" in os.popen("file -L /bin/busybox 2>/dev/null").read():
        assert is_static_elf(Path("/bin/busybox"))
