"""The images meshd builds itself, offline: the pod infra ("pause") image, busybox, and a small Python.

Each `ensure_*` is idempotent and cached by tag: when the image exists it returns at once.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from meshd.images.rootfs import (
    ImageBuildError,
    build_lock,
    extract_debs,
    fetch_debs,
    image_exists,
    import_rootfs,
    install_busybox_links,
    is_static_elf,
    prune,
    write_base_files,
)

log = logging.getLogger(__name__)

PAUSE_VERSION = "1"
PAUSE_IMAGE = f"meshd/pause:{PAUSE_VERSION}"
BUSYBOX_IMAGE = "meshd/busybox:latest"
PYTHON_IMAGE = "meshd/python:3.11"
SERVERS_IMAGE = "meshd/servers:latest"
GRPC_IMAGE = "meshd/grpc:latest"

PATH_ENV = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Sleeps until SIGTERM/SIGINT, then exits 0 at once (as PID 1 or under docker-init alike).
PAUSE_SCRIPT = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"

PYTHON_PACKAGES = (
    "libc6",
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "libexpat1",
    "zlib1g",
    "libssl3",
    "libbz2-1.0",
    "libcrypt1",
    "libffi8",
    "liblzma5",
    "libuuid1",
    "libsqlite3-0",
    "libncursesw6",
    "libtinfo6",
    "libreadline8",
    "media-types",
    "busybox-static",
)

# redis-server and dnsmasq with their libraries (Debian 12's), for Services that are not HTTP
SERVERS_PACKAGES = (
    "libc6", "busybox-static", "redis-tools", "libatomic1", "liblzf1", "libjemalloc2", "libsystemd0",
    "libssl3", "libstdc++6", "libgcc-s1", "libcap2", "libgcrypt20", "liblzma5", "libzstd1", "liblz4-1",
    "libgpg-error0", "dnsmasq-base", "libdbus-1-3", "libidn2-0", "libnetfilter-conntrack3", "libnettle8",
    "libhogweed6", "libgmp10", "libnftables1", "libunistring2", "libnfnetlink0", "libmnl0", "libnftnl11",
    "libxtables12", "libjansson4",
)  # fmt: skip


# grpcio (Debian's, with its libraries) on the Python image's packages, for gRPC replicas in containers
GRPC_PACKAGES = (*PYTHON_PACKAGES, "python3-grpcio", "libabsl20220623", "libc-ares2", "libre2-9", "libstdc++6",
                 "libgcc-s1")


def _cmd(argv: Sequence[str]) -> str:
    return "CMD " + json.dumps(list(argv))


def _busybox_binary(root: Path) -> None:
    """Puts a static busybox at root/bin/busybox: Debian's busybox-static, else the host's if static."""
    try:
        extract_debs(fetch_debs(["busybox-static"]), root)
        return
    except ImageBuildError as exc:
        host = shutil.which("busybox") or "/bin/busybox"
        if not is_static_elf(Path(host)):
            raise ImageBuildError(
                f"{exc}; and no static busybox on this host to fall back to "
                "(apt-get install busybox-static, or run `apt-get update` so it can be downloaded)"
            ) from exc
        log.warning("busybox-static .deb unavailable (%s); using the host's %s", exc, host)
        (root / "bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2(host, root / "bin" / "busybox")


def _ensure(client: Any, tag: str, populate: Callable[[Path], None], changes: Sequence[str]) -> str:
    if image_exists(client, tag):
        return tag
    with build_lock(tag):
        if image_exists(client, tag):  # another process built it while we waited
            return tag
        with tempfile.TemporaryDirectory(prefix="meshd-rootfs-") as tmp:
            root = Path(tmp)
            populate(root)
            prune(root)
            import_rootfs(client, root, tag=tag, changes=changes)
    log.info("built image %s", tag)
    return tag


def ensure_pause_image(client: Any, tag: str = PAUSE_IMAGE) -> str:
    """The pod infra image: a static busybox whose command sleeps until SIGTERM."""

    def populate(root: Path) -> None:
        _busybox_binary(root)
        for applet in ("sh", "sleep"):
            (root / "bin" / applet).symlink_to("busybox")

    return _ensure(
        client,
        tag,
        populate,
        [PATH_ENV, _cmd(["/bin/sh", "-c", PAUSE_SCRIPT])],
    )


def ensure_busybox_image(client: Any, tag: str = BUSYBOX_IMAGE) -> str:
    """A busybox rootfs with every applet (sh, httpd with CGI, nc, wget...) for tests and examples."""

    def populate(root: Path) -> None:
        _busybox_binary(root)
        install_busybox_links(root)
        write_base_files(root)

    return _ensure(client, tag, populate, [PATH_ENV, _cmd(["sh"])])


def _populate_python(root: Path, packages: Sequence[str]) -> None:
    extract_debs(fetch_debs(packages), root)
    install_busybox_links(root)
    write_base_files(root)
    bindir = root / "usr" / "bin"
    for alias in ("python3", "python"):
        if not (bindir / alias).exists():
            (bindir / alias).symlink_to("python3.11")
    _precompile(root / "usr" / "lib" / "python3.11")


_PYTHON_CHANGES = [PATH_ENV, "ENV LANG=C.UTF-8", "ENV PYTHONUNBUFFERED=1"]


def ensure_python_image(client: Any, tag: str = PYTHON_IMAGE) -> str:
    """python3.11 (minimal + stdlib, precompiled when the host runs 3.11) with busybox as its shell."""
    return _ensure(client, tag, lambda root: _populate_python(root, PYTHON_PACKAGES),
                   [*_PYTHON_CHANGES, _cmd(["python3"])])


def ensure_grpc_image(client: Any, tag: str = GRPC_IMAGE) -> str:
    """The Python image with Debian's grpcio, and `grpc-echo` (meshd/images/grpc_echo.py): a gRPC replica with
    the standard health service, for gRPC Services whose replicas run in containers."""

    def populate(root: Path) -> None:
        _populate_python(root, GRPC_PACKAGES)
        server = root / "usr" / "local" / "bin" / "grpc-echo"
        server.parent.mkdir(parents=True, exist_ok=True)
        server.write_text("#!/usr/bin/python3\n" + (Path(__file__).parent / "grpc_echo.py").read_text())
        server.chmod(0o755)

    return _ensure(client, tag, populate, [*_PYTHON_CHANGES, _cmd(["grpc-echo", "echo", "[::]:50051"])])


def ensure_servers_image(client: Any, tag: str = SERVERS_IMAGE) -> str:
    """redis-server, redis-cli and dnsmasq (Debian's, unpacked offline) with busybox as the shell: real
    servers of protocols that are not HTTP (opaque TCP, UDP), for tests and examples."""

    def populate(root: Path) -> None:
        extract_debs(fetch_debs(SERVERS_PACKAGES), root)
        install_busybox_links(root)
        write_base_files(root)
        server = root / "usr" / "bin" / "redis-server"
        if not server.exists() and not server.is_symlink():
            server.symlink_to("redis-check-rdb")  # the redis-server package holds only this link

    return _ensure(client, tag, populate, [PATH_ENV, _cmd(["sh"])])


def _precompile(stdlib: Path) -> None:
    """Byte-compiles the stdlib with the host's Python when it is 3.11 (same magic): faster app start."""
    if sys.version_info[:2] != (3, 11):
        return
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            "-j0",
            "-x",
            r"(test|idlelib|tkinter|lib2to3)",
            str(stdlib),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:  # some files may fail to compile; the image still works without their .pyc
        log.debug("compileall: %s", proc.stdout[-500:])


BUILDERS: dict[str, Callable[[Any], str]] = {
    "pause": ensure_pause_image,
    "busybox": ensure_busybox_image,
    "python": ensure_python_image,
    "servers": ensure_servers_image,
    "grpc": ensure_grpc_image,
}


BUILDERS_BY_IMAGE: dict[str, Callable[[Any], str]] = {
    PAUSE_IMAGE: ensure_pause_image,
    BUSYBOX_IMAGE: ensure_busybox_image,
    PYTHON_IMAGE: ensure_python_image,
    SERVERS_IMAGE: ensure_servers_image,
    GRPC_IMAGE: ensure_grpc_image,
}


def builder_for(image: str) -> Callable[[Any], str] | None:
    """The offline builder of one of meshd's own images (they never come from a registry), else None."""
    return BUILDERS_BY_IMAGE.get(image)
