"""A gRPC replica for tests and benchmarks run on the host: meshd/images/grpc_echo.py (the same server the
meshd/grpc image runs as `grpc-echo`). Usage: python grpc_backend.py NAME HOST:PORT"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from meshd.images.grpc_echo import main  # noqa: E402

if __name__ == "__main__":
    main()
