"""`python -m meshd.images [pause|busybox|python|servers|grpc|all]...`: builds meshd's offline images (cached by tag)."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from meshd.images import BUILDERS, ImageBuildError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meshd.images", description=__doc__)
    parser.add_argument("images", nargs="*", default=["all"], choices=[*BUILDERS, "all"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import docker

    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means no usable engine
        print(f"Docker engine not reachable: {exc}: start dockerd or set DOCKER_HOST", file=sys.stderr)
        return 1
    names = list(BUILDERS) if "all" in args.images else args.images
    for name in names:
        t0 = time.monotonic()
        try:
            tag = BUILDERS[name](client)
        except ImageBuildError as exc:
            print(f"error: {name}: {exc}", file=sys.stderr)
            return 1
        print(f"{tag}\t{time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
