"""Taking files out of a box: its output is untrusted, so it is read, never followed.

Every read goes through ``read_capped``: ``openat`` on a directory descriptor with ``O_NOFOLLOW | O_NONBLOCK``
(a symlink is refused, a FIFO never blocks), ``fstat`` must say regular file, and at most the cap + 1 bytes are
read, so a link to ``/dev/zero``, a FIFO or a sparse 10 GB file costs nothing.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# Names the worker takes from a box's output; anything else it left is dropped.
NAME_MAX = 128
READ_CHUNK = 1 << 16


class UntrustedFileError(ValueError):
    """A file of the box's output is not something the worker will read (link, FIFO, too large, missing)."""


def open_dir(path: str | Path) -> int:
    """A descriptor on a directory, refusing a symlink in its last component."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def read_capped(directory: str | Path | int, name: str, cap: int, *, owners: set[int] | None = None) -> bytes:
    """The bytes of the regular file ``name`` right inside ``directory``; UntrustedFileError past ``cap``.

    ``FileNotFoundError`` when the file is not there, so callers can tell "no result" from "a bad result".
    """
    if "/" in name or name in ("", ".", ".."):
        raise UntrustedFileError(f"{name!r} is not a plain file name")
    dir_fd = directory if isinstance(directory, int) else open_dir(directory)
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise FileNotFoundError(name) from exc
            if exc.errno in (errno.ELOOP, errno.EMLINK):
                raise UntrustedFileError(f"{name} is a symbolic link") from exc
            raise UntrustedFileError(f"{name} cannot be opened: {exc.strerror}") from exc
        try:
            info = os.fstat(fd)
            if owners is not None:
                owners.add(info.st_uid)
            if not stat.S_ISREG(info.st_mode):
                raise UntrustedFileError(f"{name} is not a regular file")
            if info.st_size > cap:
                raise UntrustedFileError(f"{name} is larger than {cap} bytes")
            chunks: list[bytes] = []
            size = 0
            while size <= cap:
                chunk = os.read(fd, min(READ_CHUNK, cap + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            if size > cap:
                raise UntrustedFileError(f"{name} is larger than {cap} bytes")
            return b"".join(chunks)
        finally:
            os.close(fd)
    finally:
        if not isinstance(directory, int):
            os.close(dir_fd)


@dataclass(frozen=True)
class OutputCaps:
    """What the worker copies out of a box: at most ``files`` regular files, each at most ``file_bytes``."""

    files: int = 64
    file_bytes: int = 8 * 1024 * 1024
    total_bytes: int = 64 * 1024 * 1024
    names: tuple[str, ...] | None = None  # only these, looked up by name (nothing is listed)


@dataclass
class Collected:
    """What was copied out, and what was left behind with the reason (for the staff log)."""

    files: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    bytes: int = 0
    owners: set[int] = field(default_factory=set)  # host uids of the files as the box left them


def collect(source: str | Path, dest: str | Path, caps: OutputCaps) -> Collected:
    """Copy the regular files at the top of ``source`` (the box's output) into ``dest`` (a host folder).

    Copies are new files written by the worker, 0640: no mode, owner or link of the box survives.
    """
    report = Collected()
    dest_fd = open_dir(dest)
    src_fd = open_dir(source)
    try:
        if caps.names is not None:
            names = list(caps.names)
        else:
            names = []
            with os.scandir(src_fd) as entries:
                for i, entry in enumerate(entries):
                    if i >= caps.files * 4:  # a folder of 100,000 names is not listed to its end
                        report.refused["..."] = "too many entries"
                        break
                    names.append(entry.name)
        for name in sorted(names):
            if len(report.files) >= caps.files:
                report.refused[name[:NAME_MAX]] = "too many files"
                continue
            if len(name) > NAME_MAX or not name.isprintable() or name.startswith("."):
                report.refused[name[:NAME_MAX]] = "name not accepted"
                continue
            room = min(caps.file_bytes, caps.total_bytes - report.bytes)
            try:
                data = read_capped(src_fd, name, room, owners=report.owners)
            except FileNotFoundError:
                if caps.names is None:
                    report.refused[name] = "vanished"
                continue
            except UntrustedFileError as exc:
                report.refused[name] = str(exc)
                continue
            try:
                fd = os.open(
                    name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640, dir_fd=dest_fd
                )
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
            except OSError as exc:
                # The worker's own disk is full (or worse): no half-copied file is left for anyone to read.
                try:
                    os.unlink(name, dir_fd=dest_fd)
                except OSError:
                    pass
                report.refused[name] = f"could not be copied out: {exc.strerror}"
                continue
            report.files.append(name)
            report.bytes += len(data)
    finally:
        os.close(src_fd)
        os.close(dest_fd)
    return report


def take_outputs(outputs: list[tuple[Path, Path]], limits) -> dict:
    """Copy each box output area into its host folder (``(area, dest)`` pairs), within ``limits``; the report by
    host folder, as both backends put it in ``Outcome.details["output"]``."""
    caps = OutputCaps(
        files=min(64, limits.output_files),
        file_bytes=limits.output_bytes,
        total_bytes=limits.output_bytes,
        names=limits.output_names,
    )
    taken: dict = {}
    try:
        for area, dest in outputs:
            report = collect(area, dest, caps)
            taken[str(dest)] = {
                "files": report.files,
                "refused": report.refused,
                "bytes": report.bytes,
                "owners": sorted(report.owners),
            }
    except OSError as exc:
        log.error("copying the box's output out failed: %s", exc)
        taken["error"] = str(exc)
    return taken
