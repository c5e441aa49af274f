"""Fixtures of the integration tests: a real etcd member (Debian's etcd-server) for the cluster and store tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.etcd_harness import EtcdCluster


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(tmp_path / "etcd").start()
    yield cluster
    cluster.stop()
