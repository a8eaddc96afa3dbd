"""Sandbox backend on bubblewrap and cgroups, for development, CI and single machines without Docker."""

from __future__ import annotations

import importlib.util
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from worker.sandbox.base import (
    TAIL_BYTES,
    Limits,
    Mount,
    Outcome,
    OutputTail,
    RunningSandbox,
    Sandbox,
    SandboxError,
    SandboxUnavailable,
    base_environment,
    check_mounts,
)
from worker.sandbox.cgroups import CGROUP_ROOT, Cgroup

log = logging.getLogger(__name__)

SANDBOX_UID = 65534
GRADER_TARGET = "/opt/grader"
# The system files the dynamic loader and Python need, and nothing else of the host's /etc.
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "mime.types")
# The cap on how long a job's stdin write may block: a job that does not read its stdin is not waited for.
STDIN_WRITE_SECONDS = 10.0


def _default_grader_dir() -> Path:
    spec = importlib.util.find_spec("grader")
    if spec is None or not spec.submodule_search_locations:
        raise SandboxUnavailable("the grader package cannot be found on this machine")
    return Path(next(iter(spec.submodule_search_locations)))


class BubblewrapSandbox(Sandbox):
    """Runs each command in a fresh bubblewrap box inside a fresh cgroup.

    Only the Python runtime (``python_roots``), the system libraries, the grader package and the job's own
    mounts are visible, all read-only except writable job mounts and a small /tmp.
    """

    name = "bubblewrap"

    def __init__(
        self,
        *,
        bwrap: str = "bwrap",
        python: str | None = None,
        python_roots: list[str] | None = None,
        grader_dir: str | Path | None = None,
        cgroup_root: str | Path = CGROUP_ROOT,
        cgroup_parent: str = "grader-sandbox",
        env: dict[str, str] | None = None,
        tail_bytes: int = TAIL_BYTES,
    ):
        found = shutil.which(bwrap)
        if found is None:
            raise SandboxUnavailable(f"bubblewrap ({bwrap}) is not installed")
        self.bwrap = found
        self.python = python or sys.executable
        roots = python_roots or [sys.prefix, sys.base_prefix]
        self.python_roots = list(dict.fromkeys(str(Path(r).absolute()) for r in roots))
        self.grader_dir = Path(grader_dir) if grader_dir else _default_grader_dir()
        self.cgroup_root = Path(cgroup_root)
        self.cgroup_parent = cgroup_parent
        self.extra_env = dict(env or {})
        self.tail_bytes = tail_bytes

    # -- building the box

    def environment(self, limits: Limits) -> dict[str, str]:
        """The whole environment of the boxed process, built from nothing so no host secret leaks in."""
        env = base_environment(limits)
        env["PATH"] = f"{Path(self.python).parent}:/usr/local/bin:/usr/bin:/bin"
        env["PYTHONPATH"] = GRADER_TARGET
        if limits.gpu is not False and limits.gpu is not True:
            env["CUDA_VISIBLE_DEVICES"] = str(limits.gpu)
        env.update(self.extra_env)
        return env

    def _runtime_args(self) -> list[str]:
        args: list[str] = []
        for top in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            host = Path("/") / top
            if host.is_symlink():
                args += ["--symlink", os.readlink(host), f"/{top}"]
            elif host.is_dir():
                args += ["--ro-bind", str(host), f"/{top}"]
        for name in ETC_FILES:
            if (Path("/etc") / name).exists():
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        for root in self.python_roots:
            if not root.startswith(("/usr/", "/lib")):
                args += ["--ro-bind", root, root]
        args += ["--ro-bind", str(self.grader_dir.resolve()), f"{GRADER_TARGET}/grader"]
        return args

    def _gpu_args(self, limits: Limits) -> list[str]:
        if limits.gpu is False:
            return []
        args = []
        for shared in ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset"):
            args += ["--dev-bind-try", f"/dev/{shared}", f"/dev/{shared}"]
        if limits.gpu is True:
            cards = sorted(p.name for p in Path("/dev").glob("nvidia[0-9]*"))
        else:
            cards = [f"nvidia{limits.gpu}"] if str(limits.gpu).isdigit() else []
            if not cards:
                raise SandboxError("the bubblewrap backend names a GPU by its index, e.g. gpu=0")
        for card in cards:
            args += ["--dev-bind", f"/dev/{card}", f"/dev/{card}"]
        return args

    def command_line(self, command: list[str], mounts: list[Mount], limits: Limits) -> list[str]:
        """The bwrap argument list for one run (exposed so tests and operators can read what is confined)."""
        if not command:
            raise SandboxError("empty command")
        if command[0] == "python":
            command = [self.python, *command[1:]]
        reserved = tuple(self.python_roots) + (GRADER_TARGET,)
        mounts = check_mounts(mounts, extra_reserved=reserved)
        args = [
            self.bwrap,
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_UID),
            "--hostname",
            "sandbox",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            # The private /tmp comes first: a runtime that lives under /tmp on the host (a checkout there) is then
            # bound on top of it rather than hidden by it.
            "--size",
            str(limits.tmp_bytes),
            "--tmpfs",
            "/tmp",  # noqa: S108 - a private tmpfs inside the box
            *self._runtime_args(),
            *self._gpu_args(limits),
        ]
        for mount in mounts:
            args += ["--bind" if mount.writable else "--ro-bind", str(mount.source), mount.target]
        # The box's own root is a tmpfs bwrap builds; once laid out it becomes read-only too.
        args += ["--remount-ro", "/", "--chdir", "/tmp", "--clearenv"]  # noqa: S108
        for key, value in self.environment(limits).items():
            args += ["--setenv", key, value]
        return [*args, "--", *command]

    # -- running it

    def run(self, command: list[str], mounts: list[Mount], limits: Limits, *, stdin: bytes | None = None) -> Outcome:
        box = _BubblewrapProcess(self, command, mounts, limits, warm=False)
        return box.finish(stdin or b"")

    def start(self, command: list[str], mounts: list[Mount], limits: Limits) -> RunningSandbox:
        return _BubblewrapProcess(self, command, mounts, limits, warm=True)


class _BubblewrapProcess(RunningSandbox):
    """One bwrap process tree in its own cgroup; used directly by ``run`` and handed out by ``start``."""

    def __init__(self, sandbox: BubblewrapSandbox, command, mounts, limits: Limits, *, warm: bool):
        self.limits = limits
        argv = sandbox.command_line(command, mounts, limits)
        self.cgroup = Cgroup.create(limits, root=sandbox.cgroup_root, parent=sandbox.cgroup_parent)
        self._finished: Outcome | None = None
        self._lock = threading.Lock()
        entry_fds: list[int] = []
        out_r = out_w = err_r = err_w = -1
        try:
            entry_fds = self.cgroup.open_for_entry()
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            pid_bytes_fds = list(entry_fds)
            rlimits = [
                (resource.RLIMIT_FSIZE, limits.file_size_bytes),
                (resource.RLIMIT_NOFILE, limits.nofile),
                (resource.RLIMIT_CORE, 0),
            ]

            def enter_limits() -> None:
                # Runs between fork and exec: the cgroup is joined before bwrap exists, so nothing escapes it.
                pid = str(os.getpid()).encode()
                for fd in pid_bytes_fds:
                    os.write(fd, pid)
                for which, value in rlimits:
                    resource.setrlimit(which, (value, value))

            self.started = time.monotonic()
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=out_w,
                stderr=err_w,
                preexec_fn=enter_limits,  # noqa: PLW1509 - nothing else can join the cgroup before exec
                start_new_session=True,
                close_fds=True,
            )
        except BaseException:
            for fd in (out_r, out_w, err_r, err_w, *entry_fds):
                if fd >= 0:
                    os.close(fd)
            self.cgroup.kill_all()
            self.cgroup.remove()
            raise
        for fd in (out_w, err_w, *entry_fds):
            os.close(fd)
        self.stdout = OutputTail(out_r, limit=sandbox.tail_bytes, ready_marker=b"ready" if warm else None)
        self.stderr = OutputTail(err_r, limit=sandbox.tail_bytes)

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stdout.ready.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
                return True
            if self.proc.poll() is not None:
                return self.stdout.ready.is_set()
        return self.stdout.ready.is_set()

    def submit(self, stdin_line: bytes) -> Outcome:
        if not stdin_line.endswith(b"\n"):
            stdin_line += b"\n"
        return self.finish(stdin_line)

    def finish(self, stdin: bytes) -> Outcome:
        with self._lock:
            if self._finished is not None:
                raise SandboxError("this sandbox has already run its job")
            self.started = time.monotonic()
            writer = threading.Thread(target=self._feed, args=(stdin,), daemon=True)
            writer.start()
            timed_out = False
            try:
                self.proc.wait(timeout=self.limits.wall_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
            return self._conclude(timed_out=timed_out)

    def kill(self) -> Outcome:
        with self._lock:
            if self._finished is not None:
                return self._finished
            return self._conclude(timed_out=False)

    def _feed(self, data: bytes) -> None:
        try:
            if data:
                self.proc.stdin.write(data)
            self.proc.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def _conclude(self, *, timed_out: bool) -> Outcome:
        """Kill whatever is left (bwrap's group, then the whole cgroup), collect, and remove the cgroup."""
        duration = time.monotonic() - self.started
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        emptied = self.cgroup.kill_all()
        try:
            exit_code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            exit_code = None
        try:
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass
        self.stdout.join()
        self.stderr.join()
        oom = self.cgroup.oom_killed()
        self.cgroup.remove()
        if not emptied:
            log.error("sandbox processes survived the kill; cgroup %s left in place", self.cgroup.dirs)
        self._finished = Outcome(
            exit_code=exit_code,
            timed_out=timed_out,
            oom_killed=oom,
            stdout_tail=self.stdout.text(),
            stderr_tail=self.stderr.text(),
            duration_s=duration,
            details={
                "backend": "bubblewrap",
                "cgroup_version": self.cgroup.version,
                "cgroup": [str(d) for d in self.cgroup.dirs.values()],
            },
        )
        return self._finished
