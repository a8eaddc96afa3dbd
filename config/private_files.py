"""The service's private files (secret key, SQLite databases, private storage): 0600, in folders 0700.

Imports nothing from Django: the settings call ``create_private_file`` before any connection opens a database, and
``./dev`` runs ``python -m config.private_files var`` to repair a ``var/`` laid out before, when no secret key (and
so no settings) exists yet. The repair is idempotent.

What it leaves alone, on purpose: the worker's cache (``worker-cache/``), whose job and dataset folders the worker
itself gives the group modes the box needs, and the datasets and base models the box reads. The box reaches those
through bind mounts the worker (root) makes, never by walking ``var/``, so ``var/`` itself can be 0700 and shield
them all from other users of the host.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
# The files of ``var/`` that hold secrets: the keys ``./dev demo`` writes and the embedded default's databases, with
# the journals SQLite keeps beside them (it gives those the mode of the database file).
SECRET_FILES = ("secret_key", "lms_key")
DATABASE_FILES = ("db.sqlite3", "broker.sqlite3")
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")
PRIVATE_STORAGE = "private"


def create_private_file(path: Path | str) -> None:
    """Create ``path`` empty and 0600 unless it exists; nothing when its folder does not exist (yet).

    SQLite opens an empty file as an empty database and creates its WAL and shared-memory files with the database
    file's mode, so a database created here never has a moment readable by others.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    except (FileExistsError, FileNotFoundError):
        return
    os.close(fd)


def sqlite_path(name: str) -> Path | None:
    """The file of an SQLite database name or ``sqla+sqlite:///`` URL; None for an in-memory or URI database."""
    if name.startswith("sqla+sqlite:///"):
        name = name[len("sqla+sqlite:///") :]
    elif "://" in name:
        return None
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name)


def _restrict(path: Path, *, directory_mode: int, file_mode: int) -> None:
    """Set the mode of one folder or regular file; links and special files are skipped, never followed."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        want = directory_mode
    elif stat.S_ISREG(info.st_mode):
        want = file_mode
    else:
        return
    if stat.S_IMODE(info.st_mode) == want:
        return
    # Changed through a descriptor opened without following links, so a file swapped for a link meanwhile is not
    # the one changed.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) == (info.st_dev, info.st_ino):
            os.fchmod(fd, want)
    finally:
        os.close(fd)


def repair(var_dir: Path | str) -> None:
    """Give an existing ``var/`` the modes it is created with now: the folder, its secrets and private storage."""
    var_dir = Path(var_dir)
    var_dir.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    _restrict(var_dir, directory_mode=PRIVATE_DIR_MODE, file_mode=PRIVATE_FILE_MODE)
    names = [*SECRET_FILES, *(db + suffix for db in DATABASE_FILES for suffix in SQLITE_COMPANIONS)]
    for name in names:
        _restrict(var_dir / name, directory_mode=PRIVATE_DIR_MODE, file_mode=PRIVATE_FILE_MODE)
    storage = var_dir / PRIVATE_STORAGE
    if storage.is_dir() and not storage.is_symlink():
        for folder, subfolders, files in os.walk(storage):  # does not descend into links
            for name in [".", *subfolders, *files]:
                _restrict(Path(folder) / name, directory_mode=PRIVATE_DIR_MODE, file_mode=PRIVATE_FILE_MODE)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m config.private_files VAR_DIR", file=sys.stderr)
        return 2
    repair(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
