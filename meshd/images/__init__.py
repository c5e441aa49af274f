"""Images meshd builds offline (no registry): pause (pod infra), busybox, python, servers (redis, dnsmasq), grpc (grpcio and grpc-echo). `python -m meshd.images`."""

from meshd.images.builders import (
    BUILDERS,
    BUSYBOX_IMAGE,
    PAUSE_IMAGE,
    PYTHON_IMAGE,
    SERVERS_IMAGE,
    GRPC_IMAGE,
    ensure_busybox_image,
    ensure_pause_image,
    ensure_python_image,
    ensure_servers_image,
    ensure_grpc_image,
)
from meshd.images.rootfs import ImageBuildError

__all__ = [
    "BUILDERS",
    "BUSYBOX_IMAGE",
    "PAUSE_IMAGE",
    "PYTHON_IMAGE",
    "SERVERS_IMAGE",
    "GRPC_IMAGE",
    "ImageBuildError",
    "ensure_busybox_image",
    "ensure_pause_image",
    "ensure_python_image",
    "ensure_servers_image",
    "ensure_grpc_image",
]
