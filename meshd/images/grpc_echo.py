"""A gRPC replica for examples, tests and benchmarks: grpcio with generic handlers (no generated code), and the
standard health service (`grpc.health.v1.Health/Check`, what Kubernetes' `grpc:` probes call) written out by
hand, so the only dependency is grpcio itself. The image meshd/grpc carries it as `/usr/local/bin/grpc-echo`.

Methods of `test.Echo` (bytes in, bytes out):
  Unary          -> the replica's name (so a client sees which replica answered)
  Echo           -> the request, unchanged
  Bidi           -> every message back, in order, as it comes
  ServerStream   -> the request is a count N: N messages b"<name> <i>"
  Fail           -> aborts with the status code given in the request (an int as text) and a message
  Slow           -> sleeps the seconds given in the request, then answers like Unary
Health: "" and "test.Echo" are SERVING, "sick" is NOT_SERVING, any other service is NOT_FOUND.
Usage: grpc-echo NAME HOST:PORT   (prints "ready" when serving; SIGTERM stops with 5 s grace)
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures

import grpc

SERVING, NOT_SERVING = 1, 2  # grpc.health.v1.HealthCheckResponse.ServingStatus
HEALTH = {"": SERVING, "test.Echo": SERVING, "sick": NOT_SERVING}


def health_service_name(request: bytes) -> str:
    """HealthCheckRequest's `service` (field 1, a string) from its protobuf bytes; "" when absent."""
    position, service = 0, ""
    while position < len(request):
        tag, position = _varint(request, position)
        if tag & 7 == 2:  # length-delimited
            size, position = _varint(request, position)
            if tag >> 3 == 1:
                service = request[position:position + size].decode()
            position += size
        elif tag & 7 == 0:
            _, position = _varint(request, position)
        else:
            raise ValueError(f"unexpected protobuf wire type {tag & 7}")
    return service


def health_response(status: int) -> bytes:
    """HealthCheckResponse{status} as protobuf: field 1, varint."""
    return bytes([0x08, status])


def _varint(data: bytes, position: int) -> tuple[int, int]:
    # meshd.model.protowire reads varints for the agent; this file is copied alone into the meshd/grpc image
    # (no meshd package there), so it keeps its own few lines
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def handlers(name: str) -> tuple[grpc.GenericRpcHandler, ...]:
    tag = name.encode()

    def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        return tag

    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        return request

    def bidi(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        yield from requests

    def server_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        for i in range(int(request)):
            yield b"%s %d" % (tag, i)

    def fail(request: bytes, context: grpc.ServicerContext) -> bytes:
        code = next(c for c in grpc.StatusCode if c.value[0] == int(request))
        context.abort(code, f"{name} fails on purpose with {code.name}")
        return b""

    def slow(request: bytes, context: grpc.ServicerContext) -> bytes:
        time.sleep(float(request))
        return tag

    def check(request: bytes, context: grpc.ServicerContext) -> bytes:
        service = health_service_name(request)
        if service not in HEALTH:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {service!r}")
        return health_response(HEALTH[service])

    echo_service = grpc.method_handlers_generic_handler("test.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
    })  # fmt: skip
    health_service = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)})
    return echo_service, health_service


def main(argv: list[str] | None = None) -> None:
    name, address = (argv or sys.argv[1:])[:2]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    server.add_generic_rpc_handlers(handlers(name))
    server.add_insecure_port(address)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    server.stop(grace=5).wait()


if __name__ == "__main__":
    main()
