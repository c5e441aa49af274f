"""Fixtures of the integration tests: a real etcd member (Debian's etcd-server) for the cluster and store tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.etcd_harness import EtcdCluster, EtcdPki


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(tmp_path / "etcd").start()
    yield cluster
    cluster.stop()


@pytest.fixture
def etcd_tls(tmp_path: Path) -> Iterator[EtcdCluster]:
    """One member that speaks only TLS and asks clients for a certificate signed by its CA (`etcd_tls.tls`)."""
    cluster = EtcdCluster(tmp_path / "etcd", tls=EtcdPki.make(tmp_path / "etcd-pki")).start()
    yield cluster
    cluster.stop()
