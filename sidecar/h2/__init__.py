"""The HTTP/2 codec: h2c and gRPC, balanced per stream (server.py downstream, call.py per stream, upstream.py pool)."""
