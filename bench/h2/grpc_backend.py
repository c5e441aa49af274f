"""A gRPC replica for tests and benchmarks: grpcio with generic handlers (no generated code), plus the
standard health service (grpcio-health-checking).

Methods of `test.Echo` (bytes in, bytes out):
  Unary          -> the replica's name (so a client sees which replica answered)
  Echo           -> the request, unchanged
  Bidi           -> every message back, in order, as it comes
  ServerStream   -> the request is a count N: N messages b"<name> <i>"
  Fail           -> aborts with the status code given in the request (an int as text) and a message
  Slow           -> sleeps the seconds given in the request, then answers like Unary
Usage: python grpc_backend.py NAME HOST:PORT   (prints "ready" when serving; SIGTERM stops with 5 s grace)
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def handlers(name: str) -> grpc.GenericRpcHandler:
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

    return grpc.method_handlers_generic_handler("test.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
    })  # fmt: skip


def main() -> None:
    name, address = sys.argv[1], sys.argv[2]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    server.add_generic_rpc_handlers((handlers(name),))
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("test.Echo", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("sick", health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(address)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    server.stop(grace=5).wait()


if __name__ == "__main__":
    main()
