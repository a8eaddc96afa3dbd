"""A run's staging area on the host: what the box may see, mounted under one root only the box's group traverses.

The box's user has no right to walk the host's folders (the worker's home, a 0700 test folder, the node cache), so
the worker, as root, bind-mounts each source read-only (``nosuid,nodev``) under ``<root>/<run>/`` and the backend
shows the box those mounts. The writable output is a fresh tmpfs there with ``size=`` and ``nr_inodes=`` bounds,
owned by the box's user; after the run its regular files are copied out and every mount is detached.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import uuid
from pathlib import Path

from worker.sandbox.account import SandboxUser
from worker.sandbox.base import SandboxUnavailable

log = logging.getLogger(__name__)

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SHARED = 1 << 20
MNT_DETACH = 0x2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _enc(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    if _libc.mount(_enc(source), _enc(target), _enc(fstype), flags, _enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _umount(target: str) -> None:
    if _libc.umount2(os.fsencode(target), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def prepare_root(root: Path, user: SandboxUser) -> None:
    """The staging root: root-owned, traversable by the box's group alone (0710)."""
    root.mkdir(parents=True, exist_ok=True)
    os.chown(root, 0, user.gid)
    root.chmod(0o710)


class Staging:
    """One run's mounts; ``close`` detaches them all, also after a failure half-way."""

    def __init__(self, root: Path, user: SandboxUser):
        if os.geteuid() != 0:
            raise SandboxUnavailable("the bubblewrap backend runs as root: it mounts the box's view and its output")
        prepare_root(root, user)
        self.user = user
        # The worker's pid in the name: a sweep at start only detaches what dead processes left.
        self.dir = root / f"{os.getpid()}-{uuid.uuid4().hex[:16]}"
        self.dir.mkdir(mode=0o710)
        os.chown(self.dir, 0, user.gid)
        self._mounted: list[str] = []
        self._points: list[Path] = []
        self._count = 0

    def _mountpoint(self, *, directory: bool) -> Path:
        self._count += 1
        point = self.dir / f"m{self._count}"
        if directory:
            point.mkdir(mode=0o700)
        else:
            point.touch(mode=0o600)
        self._points.append(point)
        return point

    def bind_readonly(self, source: Path) -> Path:
        """``source`` (a folder or a file) visible at the returned path, read-only, nosuid, nodev."""
        source = Path(source)
        point = self._mountpoint(directory=source.is_dir())
        _mount(str(source), str(point), None, MS_BIND | MS_REC)
        self._mounted.append(str(point))
        _mount(None, str(point), None, MS_PRIVATE | MS_REC)
        _mount(None, str(point), None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        return point

    def output_tmpfs(self, *, size_bytes: int, inodes: int) -> Path:
        """A fresh tmpfs the box's user owns and writes, bounded in bytes and in files."""
        point = self._mountpoint(directory=True)
        options = f"size={size_bytes},nr_inodes={inodes},mode=0700,uid={self.user.uid},gid={self.user.gid}"
        _mount("tmpfs", str(point), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, options)
        self._mounted.append(str(point))
        return point

    def shared_spool(self) -> Path:
        """A small tmpfs whose mounts propagate into a box that binds it (the box's copy is a slave): a fork
        server's spool, where each job's files are mounted after the server's box has started."""
        point = self._mountpoint(directory=True)
        options = f"size=1m,nr_inodes=4096,mode=0710,uid=0,gid={self.user.gid}"
        _mount("tmpfs", str(point), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, options)
        self._mounted.append(str(point))
        _mount(None, str(point), None, MS_SHARED)
        return point

    def bind_into(self, source: Path, target: Path) -> None:
        """Bind ``source`` (a mount of this staging area) at ``target``, a new folder under a spool: the new mount
        keeps the source's flags (read-only, nosuid, nodev) and reaches the server's box."""
        target.mkdir(mode=0o700)
        self._points.append(target)
        _mount(str(source), str(target), None, MS_BIND)
        self._mounted.append(str(target))

    def tmpfs_at(self, target: Path, *, size_bytes: int, inodes: int) -> Path:
        """A fresh bounded tmpfs the box's user owns, mounted at ``target`` (a new folder under a spool)."""
        target.mkdir(mode=0o700)
        self._points.append(target)
        options = f"size={size_bytes},nr_inodes={inodes},mode=0700,uid={self.user.uid},gid={self.user.gid}"
        _mount("tmpfs", str(target), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, options)
        self._mounted.append(str(target))
        return target

    def close(self) -> None:
        for point in reversed(self._mounted):
            try:
                _umount(point)
            except OSError as exc:
                log.error("cannot detach the sandbox mount %s: %s", point, exc)
        self._mounted.clear()
        # Never a recursive delete here: if a detach failed, that would reach into the mounted source.
        for point in self._points:
            try:
                point.rmdir() if point.is_dir() else point.unlink()
            except OSError as exc:
                log.error("cannot remove the sandbox mount point %s: %s", point, exc)
        try:
            self.dir.rmdir()
        except OSError as exc:
            log.error("cannot remove the sandbox staging folder %s: %s", self.dir, exc)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(root: Path) -> int:
    """Detach and remove what killed workers left under ``root``; returns how many runs were cleaned."""
    if not root.is_dir():
        return 0
    with open("/proc/self/mountinfo") as handle:
        mounted = [line.split()[4] for line in handle]
    cleaned = 0
    for run in root.iterdir():
        pid, _, _ = run.name.partition("-")
        if not pid.isdigit() or _alive(int(pid)):
            continue
        prefix = str(run) + "/"
        for point in sorted((p for p in mounted if p.startswith(prefix)), key=len, reverse=True):
            try:
                _umount(point)
            except OSError as exc:
                log.warning("cannot detach the stale sandbox mount %s: %s", point, exc)
        for point in run.iterdir():
            try:
                point.rmdir() if point.is_dir() else point.unlink()
            except OSError as exc:
                log.warning("cannot remove the stale sandbox mount point %s: %s", point, exc)
        try:
            run.rmdir()
            cleaned += 1
        except OSError:
            pass
    return cleaned
