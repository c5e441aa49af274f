"""gRPC end to end: `meshd up` with examples/grpc-echo.yaml as a user runs it (grpcio replicas in containers on
the Docker engine, with grpc readiness probes), its node sidecar, and a grpcio client on ONE channel to the
Service address; then a rolling restart under load."""

from __future__ import annotations

import collections
import threading

import pytest

from tests.e2e.test_mesh import ROOT, Meshd

grpc = pytest.importorskip("grpc")
pytestmark = [pytest.mark.slow, pytest.mark.docker]


def test_grpc_example_balances_calls_per_request_and_rolls_without_failures(tmp_path, grpc_image, pause_image):
    meshd = Meshd(tmp_path, "up", "-f", str(ROOT / "examples" / "grpc-echo.yaml")).start()
    try:
        address = meshd.service_address("echo")
        meshd.until(lambda: meshd.ready_endpoints("echo") == 3, what="3 ready endpoints (grpc probes)")
        target = f"{address}:50051"
        with grpc.insecure_channel(target) as channel:
            call = channel.unary_unary("/test.Echo/Unary")
            meshd.until(lambda: _answers(call), what="the first call through the sidecar")
            served = collections.Counter(call(b"", timeout=10) for _ in range(60))
            assert sum(served.values()) == 60 and len(served) == 3, served

            stop = threading.Event()
            failures: list[str] = []
            ok = [0]

            def load() -> None:
                while not stop.is_set():
                    try:
                        call(b"", timeout=10)
                        ok[0] += 1
                    except grpc.RpcError as e:
                        failures.append(f"{e.code()}: {e.details()}")

            threads = [threading.Thread(target=load) for _ in range(4)]
            for t in threads:
                t.start()
            try:
                meshd.cli("rollout", "restart", "deployment/echo")
                meshd.cli("rollout", "status", "deployment/echo", "--timeout", "120s")
            finally:
                stop.set()
                for t in threads:
                    t.join()
            assert not failures, failures[:5]
            assert ok[0] > 0
    finally:
        meshd.stop()


def _answers(call) -> bool:  # type: ignore[no-untyped-def]
    try:
        return bool(call(b"", timeout=2))
    except grpc.RpcError:
        return False
