"""grpc-echo's hand-written health messages agree with the official grpc.health.v1 protobuf classes."""

from __future__ import annotations

import pytest

from meshd.images.grpc_echo import NOT_SERVING, SERVING, health_response, health_service_name

health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")


@pytest.mark.parametrize("service", ["", "test.Echo", "sick", "x" * 300, "ünïcode"])
def test_the_service_name_is_read_from_an_official_request(service):
    assert health_service_name(health_pb2.HealthCheckRequest(service=service).SerializeToString()) == service


@pytest.mark.parametrize("status", [SERVING, NOT_SERVING])
def test_the_response_parses_as_an_official_one(status):
    assert health_pb2.HealthCheckResponse.FromString(health_response(status)).status == status


def test_a_request_with_an_unexpected_wire_type_is_refused():
    with pytest.raises(ValueError):
        health_service_name(b"\x0d\x00\x00\x00\x00")  # field 1 as fixed32
