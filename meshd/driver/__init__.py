"""Container drivers: `docker` (the Docker engine) and `process` (local processes, like Nomad's raw_exec)."""

from __future__ import annotations

from typing import Any

from meshd.driver.base import Driver, DriverError


class ContainerNotFound(DriverError):
    """The container (or sandbox) does not exist (any more)."""


class ExecTimeout(DriverError, TimeoutError):
    """An exec did not finish within its timeout (a probe counts it as a failure)."""


DRIVERS = ("docker", "process")


def make_driver(name: str, **opts: Any) -> Driver:
    """A driver by name: `docker` (opts: agent_id, network, subnet, docker_host, call_timeout) or
    `process` (opts: agent_id, state_dir)."""
    if name == "docker":
        from meshd.driver.docker import DockerDriver

        return DockerDriver(**opts)
    if name == "process":
        from meshd.driver.process import ProcessDriver

        return ProcessDriver(**opts)
    raise ValueError(f"unknown driver {name!r}: choose one of {', '.join(DRIVERS)}")


__all__ = ["DRIVERS", "ContainerNotFound", "Driver", "DriverError", "ExecTimeout", "make_driver"]
