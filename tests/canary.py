"""Secrets planted in the test process, and a Python that records the environment each child process starts with.

A child that parses untrusted input must not see the web process's secrets. The tests plant unique values where
the web process keeps them (its environment) and read back, from /proc, the environment the child really started
with: the recording interpreter is a shell script standing in for ``sys.executable`` that saves
``/proc/$$/environ`` (the environment the kernel handed it at exec) and then execs the real Python with it.
"""

from __future__ import annotations

import secrets
import shlex
import sys
from pathlib import Path

import pytest

PLANTED = ("SECRET_KEY", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY")


def plant_canaries(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Put a unique random value under each secret's name in this process's environment."""
    canaries = {name: f"canary-{name.lower()}-{secrets.token_hex(16)}" for name in PLANTED}
    for name, value in canaries.items():
        monkeypatch.setenv(name, value)
    return canaries


def parse_environ(raw: bytes) -> dict[str, str]:
    entries = [entry.decode() for entry in raw.split(b"\0") if entry]
    return dict(entry.partition("=")[::2] for entry in entries)


def record_child_environments(monkeypatch: pytest.MonkeyPatch, folder: Path):
    """Make every child started from ``sys.executable`` save its starting environment; returns a reader of them."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "python"
    script.write_text(
        "#!/bin/sh\n"
        f"cat /proc/$$/environ > {shlex.quote(str(folder))}/environ.$$\n"
        f'exec {shlex.quote(sys.executable)} "$@"\n'
    )
    script.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(script))

    def started() -> list[dict[str, str]]:
        return [parse_environ(path.read_bytes()) for path in sorted(folder.glob("environ.*"))]

    return started


def assert_no_canary(environment: dict[str, str], canaries: dict[str, str]) -> None:
    text = "\0".join(f"{key}={value}" for key, value in environment.items())
    for name, value in canaries.items():
        assert name not in environment
        assert value not in text
