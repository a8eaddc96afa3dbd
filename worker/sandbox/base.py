"""The one sandbox interface: what a run is given (mounts, limits), what it returns, and its errors."""

from __future__ import annotations

import abc
import os
import stat
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

TAIL_BYTES = 64 * 1024
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
# Paths the sandbox itself lays out; a job mount on top of them would hide or replace the runtime.
RESERVED_TARGETS = ("/", "/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/dev", "/tmp", "/sys")  # noqa: S108


class SandboxUnavailable(RuntimeError):
    """The backend cannot confine a process here; the worker refuses to grade rather than run unconfined."""


class SandboxError(RuntimeError):
    """A sandbox was asked something it cannot do (bad mount, used twice, not ready)."""


@dataclass(frozen=True)
class Mount:
    """A host folder or file made visible inside the sandbox at ``target``; read-only unless ``writable``.

    A writable mount is the box's output: inside, a fresh bounded tmpfs; after the run its regular files (and
    nothing else) are copied into ``source``, an empty host folder the box never sees directly.
    """

    source: Path
    target: str
    writable: bool = False
    # The same for every box of a fork server's key (the dataset, the base model): a backend that forks boxes
    # from a warm server mounts it in the server; the others are mounted in each box alone.
    shared: bool = False


@dataclass(frozen=True)
class ForkTemplate:
    """How a backend that forks its boxes from a warm server starts that server: the server's command (it warms up
    once, then forks one box per request: ``python -m grader fork-server``), and whether each forked box creates its
    CUDA context before it says ready (a context never survives a fork, so the server has none)."""

    command: tuple[str, ...]
    cuda: bool = False


@dataclass(frozen=True)
class Limits:
    """Resource bounds of one run. ``gpu``: False for none, True for any one GPU, or a device id."""

    wall_seconds: float = 600.0
    memory_bytes: int = 4 * 1024**3
    pids: int = 256
    file_size_bytes: int = 256 * 1024**2
    nofile: int = 1024
    cpus: float | None = None
    gpu: bool | int | str = False
    tmp_bytes: int = 512 * 1024**2
    # The writable output is a tmpfs of its own: bounded in bytes and in files (inodes) while the box runs.
    output_bytes: int = 64 * 1024**2
    output_files: int = 256
    # The output files taken out after the run (None: any regular file, up to a cap); the rest is deleted.
    output_names: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.wall_seconds <= 0 or self.memory_bytes <= 0 or self.pids <= 0:
            raise ValueError("wall_seconds, memory_bytes and pids must be positive")
        if self.file_size_bytes <= 0 or self.nofile <= 0 or self.tmp_bytes <= 0:
            raise ValueError("file_size_bytes, nofile and tmp_bytes must be positive")
        if self.output_bytes <= 0 or self.output_files <= 0:
            raise ValueError("output_bytes and output_files must be positive")
        if self.cpus is not None and self.cpus <= 0:
            raise ValueError("cpus must be positive when given")

    @property
    def thread_cap(self) -> int:
        """How many threads numeric libraries may start: the CPU quota rounded up, at least one."""
        if self.cpus is None:
            return max(1, os.cpu_count() or 1)
        return max(1, int(-(-self.cpus // 1)))


@dataclass(frozen=True)
class Outcome:
    """How a sandboxed command ended. The tails came from untrusted code; treat them as such."""

    exit_code: int | None
    timed_out: bool
    oom_killed: bool
    stdout_tail: str
    stderr_tail: str
    duration_s: float
    details: dict = field(default_factory=dict, compare=False)


def base_environment(limits: Limits) -> dict[str, str]:
    """The environment every backend starts from: built from nothing, so no host secret can leak in."""
    threads = str(limits.thread_cap)
    env = {
        "HOME": "/tmp",  # noqa: S108 - the sandbox's own private tmpfs
        "USER": "nobody",
        "LOGNAME": "nobody",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "NUMEXPR_NUM_THREADS": threads,
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "MPLCONFIGDIR": "/tmp/matplotlib",  # noqa: S108
        "XDG_CACHE_HOME": "/tmp/.cache",  # noqa: S108
    }
    if limits.gpu is False:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


class RunningSandbox(abc.ABC):
    """A sandbox started ahead of its job: its interpreter warms up, then it receives one job on stdin."""

    @abc.abstractmethod
    def wait_ready(self, timeout: float) -> bool:
        """True once the command printed its ``ready`` line; False if it died or ``timeout`` passed."""

    @abc.abstractmethod
    def submit(self, stdin_line: bytes) -> Outcome:
        """Send the job (one line), close stdin and wait for the end; the wall clock starts now."""

    @abc.abstractmethod
    def kill(self) -> Outcome:
        """Stop the sandbox and everything in it now, release its resources, report what it printed."""

    def memory_bytes(self) -> int | None:
        """The memory the box holds now (its cgroup's charge); None where the backend cannot tell."""
        return None

    def prioritise(self) -> None:
        """Give the box the normal CPU weight: it starts low, warming only on CPU that running jobs leave idle, and
        is raised once it is handed its job (``submit`` raises it too). A backend without weights does nothing."""
        return None

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


class Sandbox(abc.ABC):
    """A backend running one command confined: no network, no secrets, bounded resources, a new box each run.

    ``command[0] == "python"`` is replaced by the backend's own interpreter, so a caller never needs to know
    where the grader's Python lives inside the box.
    """

    name = "abstract"

    @abc.abstractmethod
    def run(self, command: list[str], mounts: list[Mount], limits: Limits, *, stdin: bytes | None = None) -> Outcome:
        """Run ``command`` to completion (or to the wall clock) in a fresh sandbox."""

    @abc.abstractmethod
    def start(
        self, command: list[str], mounts: list[Mount], limits: Limits, *, template: ForkTemplate | None = None
    ) -> RunningSandbox:
        """Launch ``command`` in a fresh sandbox that waits on stdin for its job (warm start).

        With ``template``, a backend that can may instead fork the box from a warm server of that template (the
        same fresh box, without paying the imports again); one that cannot runs ``command``."""

    def close(self) -> None:
        """Stop what the backend keeps running between boxes (fork servers); the worker process is ending."""
        return None

    def sweep_leftovers(self) -> int:
        """Remove what dead worker processes left behind (a backend with nothing to sweep returns 0)."""
        return 0

    def probe(self) -> None:
        """Really run a trivial command confined; raise SandboxUnavailable with the reason when that fails."""
        limits = Limits(wall_seconds=60, memory_bytes=256 * 1024**2, pids=32, tmp_bytes=16 * 1024**2)
        try:
            outcome = self.run(["python", "-c", "print('sandbox-ok')"], [], limits)
        except SandboxUnavailable:
            raise
        except Exception as exc:
            raise SandboxUnavailable(f"{self.name} sandbox probe failed: {exc!r}") from exc
        if outcome.exit_code != 0 or outcome.stdout_tail.strip() != "sandbox-ok":
            raise SandboxUnavailable(
                f"{self.name} sandbox probe failed: exit {outcome.exit_code}, "
                f"timed out {outcome.timed_out}, stderr: {outcome.stderr_tail[-2000:]}"
            )


def check_mounts(mounts: list[Mount], *, extra_reserved: tuple[str, ...] = ()) -> list[Mount]:
    """Resolve mount sources and refuse anything that would weaken the box: the docker socket, odd targets."""
    checked: list[Mount] = []
    targets: set[str] = set()
    reserved = set(RESERVED_TARGETS) | set(extra_reserved)
    for mount in mounts:
        source = Path(mount.source).resolve(strict=True)
        if str(source) in DOCKER_SOCKETS or any(source == Path(s).resolve() for s in DOCKER_SOCKETS):
            raise SandboxError("the docker socket is never mounted into a sandbox")
        if stat.S_ISSOCK(source.stat().st_mode):
            raise SandboxError(f"refusing to mount a socket into a sandbox: {source}")
        target = PurePosixPath(mount.target)
        if not target.is_absolute() or ".." in target.parts or str(target) != mount.target.rstrip("/"):
            raise SandboxError(f"a mount target must be a plain absolute path: {mount.target!r}")
        under_reserved = any(str(target).startswith(r + "/") for r in reserved - {"/"})
        if str(target) in reserved or under_reserved:
            raise SandboxError(f"a mount target may not replace the sandbox's own paths: {mount.target!r}")
        if str(target) in targets:
            raise SandboxError(f"two mounts share the target {mount.target!r}")
        targets.add(str(target))
        checked.append(Mount(source=source, target=str(target), writable=mount.writable, shared=mount.shared))
    return checked


class OutputTail:
    """Drains a pipe in a thread, keeping only its last bytes: a chatty or hostile process cannot fill memory.

    With ``ready_marker`` the first line equal to it is taken out of the output and signalled by ``ready``.
    """

    def __init__(self, fd: int, *, limit: int = TAIL_BYTES, ready_marker: bytes | None = None):
        self._fd = fd
        self._limit = limit
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._lock = threading.Lock()
        self._marker = ready_marker
        self._pending = b""
        self.ready = threading.Event()
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _keep(self, data: bytes) -> None:
        if not data:
            return
        with self._lock:
            self._chunks.append(data)
            self._size += len(data)
            while self._size - len(self._chunks[0]) >= self._limit:
                self._size -= len(self._chunks.popleft())

    def _scan_for_marker(self, data: bytes) -> None:
        self._pending += data
        while b"\n" in self._pending:
            line, self._pending = self._pending.split(b"\n", 1)
            if line.strip() == self._marker:
                self.ready.set()
                self._keep(self._pending)
                self._pending = b""
                return
            self._keep(line + b"\n")
        if len(self._pending) > 4096:  # a line this long is not the marker
            self._keep(self._pending)
            self._pending = b""

    def _drain(self) -> None:
        try:
            while True:
                data = os.read(self._fd, 65536)
                if not data:
                    break
                if self._marker is not None and not self.ready.is_set():
                    self._scan_for_marker(data)
                else:
                    self._keep(data)
        except OSError:
            pass
        finally:
            self._keep(self._pending)
            self._pending = b""
            try:
                os.close(self._fd)
            except OSError:
                pass
            self.closed.set()

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)

    def text(self) -> str:
        with self._lock:
            data = b"".join(self._chunks)
        return data[-self._limit :].decode("utf-8", errors="replace")
