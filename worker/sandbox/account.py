"""The dedicated unprivileged user a box runs as, on both backends: never host root, never the worker's user."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass

from worker.sandbox.base import SandboxUnavailable

DEFAULT_USER = "grader-sandbox"


@dataclass(frozen=True)
class SandboxUser:
    name: str
    uid: int
    gid: int

    @property
    def docker_user(self) -> str:
        return f"{self.uid}:{self.gid}"


def sandbox_user(name: str = DEFAULT_USER) -> SandboxUser:
    """The account boxes run as; SandboxUnavailable when it is missing or is a privileged account."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise SandboxUnavailable(
            f"the sandbox user {name!r} does not exist; create it with `python -m worker.sandbox.setup` as root"
        ) from None
    if entry.pw_uid == 0 or entry.pw_gid == 0 or entry.pw_uid == os.getuid():
        raise SandboxUnavailable(f"the sandbox user {name!r} must be an unprivileged account of its own")
    return SandboxUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def ensure_sandbox_user(name: str = DEFAULT_USER) -> SandboxUser:
    """Create the account (a system user with its own group, no home, no shell) where it is missing."""
    try:
        return sandbox_user(name)
    except SandboxUnavailable:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    try:
        grp.getgrnam(name)
        group_args = ["--gid", name]
    except KeyError:
        group_args = ["--user-group"]
    subprocess.run(
        [
            useradd,
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            *group_args,
            name,
        ],
        check=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    return sandbox_user(name)
