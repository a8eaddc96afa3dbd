"""The one way to start a child process that parses untrusted input (zip, PDF, ONNX): clean environment, limits.

The parent side is ``run_limited``: it starts ``python -m grader.limited_child <limits> -- MODULE ARGS...`` with an
environment built from nothing (no secret, database address or storage key of the caller can reach the child), in
a session of its own, reading both pipes into bounded tails and killing the whole process group at the wall clock.
The child side is this module run as a program: it lowers its own resource limits first and only then runs MODULE
as ``__main__``, so the parser never runs unlimited. Limits are set in the child rather than in a ``preexec_fn``
because a ``preexec_fn`` is unsafe once the parent (a web or worker process) runs threads.

No socket of the child connects anywhere. The address-space cap (``RLIMIT_AS``) suits these parsers, which load no CUDA or torch; the grading sandbox uses
cgroups instead. Only the standard library is imported here.
"""

from __future__ import annotations

import os
import resource
import runpy
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

ENTRY_MODULE = "grader.limited_child"
# The folder holding the grader package: without it on the child's path the entry point cannot be found.
GRADER_ROOT = str(Path(__file__).resolve().parents[1])
SEARCH_PATH = "/usr/bin:/bin"
READ_BYTES = 64 * 1024
# Once the child has exited, how long a descendant that left its group may keep the pipes open.
DRAIN_SECONDS = 1.0
POLL_SECONDS = 0.02  # how soon an exit is noticed while the pipes are quiet


@dataclass(frozen=True)
class ChildLimits:
    """Bounds of one child. ``file_size_bytes=0`` means the child can write no byte to any file."""

    cpu_seconds: int
    memory_bytes: int
    file_size_bytes: int
    wall_seconds: float
    open_files: int = 64
    output_bytes: int = 64 * 1024

    def __post_init__(self):
        if self.cpu_seconds <= 0 or self.memory_bytes <= 0 or self.open_files <= 0:
            raise ValueError("cpu_seconds, memory_bytes and open_files must be positive")
        if self.wall_seconds <= 0 or self.output_bytes <= 0:
            raise ValueError("wall_seconds and output_bytes must be positive")
        if self.file_size_bytes < 0:
            raise ValueError("file_size_bytes must not be negative")

    def flags(self) -> list[str]:
        """The entry point's command-line form of the limits the child sets on itself."""
        return [
            "--cpu",
            str(int(self.cpu_seconds)),
            "--memory",
            str(int(self.memory_bytes)),
            "--fsize",
            str(int(self.file_size_bytes)),
            "--nofile",
            str(int(self.open_files)),
        ]


@dataclass(frozen=True)
class ChildResult:
    """How a limited child ended. Its output came from code reading untrusted input: parse it, never trust it.

    ``returncode`` is negative for a signal (-9 when killed at the wall clock or the CPU limit). The outputs are
    the last ``output_bytes`` the child wrote to each stream (its verdict and its traceback come last).
    """

    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool
    stdout_truncated: bool
    stderr_truncated: bool

    @property
    def truncated(self) -> bool:
        return self.stdout_truncated or self.stderr_truncated


def child_environment(pythonpath: list[str] | None = None) -> dict[str, str]:
    """The child's whole environment, built from nothing (never from ``os.environ``)."""
    roots = [str(root) for root in (pythonpath or [GRADER_ROOT])]
    if GRADER_ROOT not in roots:
        roots.append(GRADER_ROOT)
    return {
        "PATH": SEARCH_PATH,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONPATH": os.pathsep.join(roots),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }


class _Tail:
    """The last ``cap`` bytes written to a stream, whatever the child writes in all."""

    def __init__(self, cap: int):
        self.cap = cap
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.size += len(chunk)
        while self.size - len(self.chunks[0]) >= self.cap:
            self.size -= len(self.chunks.popleft())
            self.truncated = True

    def value(self) -> bytes:
        data = b"".join(self.chunks)
        if len(data) > self.cap:
            self.truncated = True
            data = data[-self.cap :]
        return data


def _has_exited(pid: int) -> bool:
    """Whether the child has ended, without reaping it: while it is unreaped its group id cannot be reused."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # already reaped (SIGCHLD ignored by the caller)
        return True


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_limited(
    module: str,
    args: list[str],
    *,
    limits: ChildLimits,
    cwd: str | Path | None = None,
    pythonpath: list[str] | None = None,
) -> ChildResult:
    """Run ``python -m MODULE ARGS`` under ``limits``, clean environment; how the child failed is in the result.

    ``pythonpath``: the roots the child imports from (default: the folder holding the grader package, which is
    always added so that the entry point is found). ``-P`` keeps the working folder off the child's import path.
    """
    command = [sys.executable, "-P", "-m", ENTRY_MODULE, *limits.flags(), "--", module, *args]
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_environment(pythonpath),
        cwd=cwd,
        close_fds=True,
        start_new_session=True,  # its own process group (= its pid), killed whole
    )
    stdout, stderr = _Tail(limits.output_bytes), _Tail(limits.output_bytes)
    tails = {process.stdout.fileno(): stdout, process.stderr.fileno(): stderr}
    open_pipes = set(tails)
    running = True
    timed_out = False
    deadline = time.monotonic() + limits.wall_seconds
    try:
        with selectors.DefaultSelector() as selector:
            for fd in tails:
                selector.register(fd, selectors.EVENT_READ)
            while running or open_pipes:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = running
                    break
                for key, _ in selector.select(min(remaining, POLL_SECONDS)):
                    chunk = os.read(key.fd, READ_BYTES)
                    if chunk:
                        tails[key.fd].add(chunk)
                    else:
                        selector.unregister(key.fd)
                        open_pipes.discard(key.fd)
                if running and _has_exited(process.pid):
                    running = False
                    _kill_group(process.pid)  # whatever it left behind in its group
                    deadline = min(deadline, time.monotonic() + DRAIN_SECONDS)
    finally:
        _kill_group(process.pid)
        process.wait()
        process.stdout.close()
        process.stderr.close()
    out, err = stdout.value(), stderr.value()
    return ChildResult(
        returncode=process.returncode,
        stdout=out,
        stderr=err,
        timed_out=timed_out,
        stdout_truncated=stdout.truncated,
        stderr_truncated=stderr.truncated,
    )


def _lower_limit(which: int, value: int) -> None:
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)  # an unprivileged process cannot raise its hard limit, only keep it
    resource.setrlimit(which, (value, value))


def _no_network() -> None:
    """No parser run here has a reason to reach the network (a notebook's external image, a PDF's link, an XML
    entity): every socket of this process refuses to connect or send, whatever library asks."""
    import socket

    def refuse(*_args, **_kwargs):
        raise OSError("no network in a limited child")

    for method in ("connect", "connect_ex", "sendto", "sendmsg"):
        setattr(socket.socket, method, refuse)


USAGE = "usage: python -m grader.limited_child --cpu N --memory BYTES --fsize BYTES --nofile N -- MODULE [ARGS...]"


def enter(argv: list[str]) -> None:
    """The child side: limit this process, then run MODULE as ``__main__`` in it (SystemExit carries its status)."""
    names = {
        "--cpu": resource.RLIMIT_CPU,
        "--memory": resource.RLIMIT_AS,
        "--fsize": resource.RLIMIT_FSIZE,
        "--nofile": resource.RLIMIT_NOFILE,
    }
    if "--" not in argv:
        raise SystemExit(USAGE)
    split = argv.index("--")
    options, rest = argv[:split], argv[split + 1 :]
    values = dict(zip(options[::2], options[1::2], strict=False))
    # Every limit must be given: a forgotten flag must not mean "unlimited".
    if not rest or len(options) != 2 * len(names) or sorted(values) != sorted(names):
        raise SystemExit(USAGE)
    try:
        numbers = {flag: int(values[flag]) for flag in names}
    except ValueError:
        raise SystemExit(USAGE) from None
    if any(number < 0 for number in numbers.values()):  # -1 is RLIM_INFINITY
        raise SystemExit(USAGE)
    for flag, which in names.items():
        _lower_limit(which, numbers[flag])
    _lower_limit(resource.RLIMIT_CORE, 0)
    _no_network()
    sys.argv = list(rest)
    runpy.run_module(rest[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    enter(sys.argv[1:])
