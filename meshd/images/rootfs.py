"""Offline rootfs building: Debian .debs (apt-get download, cached) -> dpkg -x -> tar -> `docker import`.

Nothing here needs a registry: the packages come from the host's apt sources (or the local cache) and the
image is imported from a tarball, so meshd can build the images it needs on a machine that cannot pull.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path(os.environ.get("MESHD_CACHE", Path.home() / ".cache" / "meshd"))


class ImageBuildError(Exception):
    """An image could not be built offline; the message says what is missing."""


def deb_cache_dir(cache: Path | None = None) -> Path:
    path = (cache or DEFAULT_CACHE) / "debs"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def build_lock(name: str, cache: Path | None = None) -> Iterator[None]:
    """Serialises builds of one image across processes (tests and agents may race to build it)."""
    lock_dir = (cache or DEFAULT_CACHE) / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{name.replace('/', '_').replace(':', '_')}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cached_deb(package: str, cache_dir: Path) -> Path | None:
    """The newest cached .deb of `package`, if any (names are `<package>_<version>_<arch>.deb`)."""
    found = sorted(cache_dir.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def fetch_debs(packages: Sequence[str], *, cache: Path | None = None, timeout: float = 300) -> list[Path]:
    """Returns one .deb per package, downloading the missing ones with `apt-get download`."""
    cache_dir = deb_cache_dir(cache)
    missing = [p for p in packages if cached_deb(p, cache_dir) is None]
    if missing:
        if shutil.which("apt-get") is None:
            raise ImageBuildError(f"cannot download {', '.join(missing)}: apt-get is not available")
        log.info("downloading %s into %s", " ".join(missing), cache_dir)
        proc = _apt_download(missing, cache_dir, timeout)
        if proc.returncode != 0 and "Unable to locate" in proc.stderr and os.geteuid() == 0:
            log.info("no package lists yet: running apt-get update once")  # a fresh machine has none
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=timeout, check=False)
            proc = _apt_download(missing, cache_dir, timeout)
        if proc.returncode != 0:
            hint = " (run `apt-get update` first?)" if "Unable to locate" in proc.stderr else ""
            raise ImageBuildError(
                f"apt-get download {' '.join(missing)} failed{hint}: {proc.stderr.strip()[-500:]}"
            )
    debs = []
    for package in packages:
        deb = cached_deb(package, cache_dir)
        if deb is None:
            raise ImageBuildError(f"apt-get download {package} produced no .deb in {cache_dir}")
        debs.append(deb)
    return debs


def _apt_download(packages: Sequence[str], cache_dir: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["apt-get", "download", *packages], cwd=cache_dir, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ImageBuildError(f"apt-get download {' '.join(packages)} timed out after {timeout}s") from exc


def extract_debs(debs: Sequence[Path], root: Path) -> None:
    """Unpacks each .deb's files into `root` (no maintainer scripts run)."""
    if shutil.which("dpkg") is None:
        raise ImageBuildError("dpkg is needed to unpack .debs (dpkg -x)")
    for deb in debs:
        proc = subprocess.run(
            ["dpkg", "-x", str(deb), str(root)], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise ImageBuildError(f"dpkg -x {deb} failed: {proc.stderr.strip()}")


def busybox_applets(busybox: Path) -> list[str]:
    """Applet paths (e.g. `bin/sh`, `usr/sbin/httpd`) of a static busybox, asked from the binary itself."""
    proc = subprocess.run(
        [str(busybox), "--list-full"], capture_output=True, text=True, timeout=30, check=False
    )
    if proc.returncode != 0:
        raise ImageBuildError(f"{busybox} --list-full failed: {proc.stderr.strip()}")
    return [line.strip().lstrip("/") for line in proc.stdout.splitlines() if line.strip()]


def install_busybox_links(root: Path, *, busybox: str = "/bin/busybox") -> None:
    """Symlinks every applet to busybox, leaving paths that already exist alone."""
    for applet in busybox_applets(root / busybox.lstrip("/")):
        path = root / applet
        if path.exists() or path.is_symlink():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(busybox)


def write_base_files(root: Path) -> None:
    """/etc/passwd, group, hosts-independent bits and a sticky /tmp: what small programs expect to find."""
    etc = root / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    for d in ("tmp", "root", "var/www", "proc", "sys", "dev"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)


def is_static_elf(path: Path) -> bool:
    """True when `path` is an ELF executable without a PT_INTERP program header (no dynamic loader)."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only
        return False
    order: Literal["little", "big"] = "little" if data[5] == 1 else "big"
    phoff = int.from_bytes(data[0x20:0x28], order)
    phentsize = int.from_bytes(data[0x36:0x38], order)
    phnum = int.from_bytes(data[0x38:0x3A], order)
    for i in range(phnum):
        off = phoff + i * phentsize
        if int.from_bytes(data[off : off + 4], order) == 3:  # PT_INTERP
            return False
    return True


def prune(root: Path) -> None:
    """Drops documentation and locales: nothing in a container reads them."""
    for rel in ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian"):
        shutil.rmtree(root / rel, ignore_errors=True)


def import_rootfs(client: Any, root: Path, *, tag: str, changes: Sequence[str]) -> str:
    """Tars `root` and imports it as image `tag` with Dockerfile-style `changes`; returns the image id."""
    repository, _, version = tag.rpartition(":")
    if not repository or "/" in version:
        repository, version = tag, "latest"
    with tempfile.NamedTemporaryFile(suffix=".tar") as tmp:
        with tarfile.open(tmp.name, "w") as tar:
            for entry in sorted(root.iterdir()):
                tar.add(str(entry), arcname=entry.name)
        try:
            result = client.api.import_image_from_file(
                tmp.name, repository=repository, tag=version, changes=list(changes)
            )
        except Exception as exc:  # docker.errors.APIError and connection errors alike
            raise ImageBuildError(f"docker import of {tag} failed: {exc}") from exc
    log.info("imported %s: %s", tag, str(result).strip()[:200])
    return str(client.images.get(tag).id)


def image_exists(client: Any, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False
