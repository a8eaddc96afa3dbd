"""Sandbox backend on bubblewrap and cgroups, for development, CI and single machines without Docker.

How a box starts, and why each step is there:
- bwrap runs as the dedicated sandbox user (never host root), started with an environment built from nothing:
  bwrap's init (PID 1 in the box) keeps the environment it was started with, so that must hold no secret;
- its arguments come through ``--args FD`` (a memfd), so ``/proc/1/cmdline`` shows no host path or setting;
- an exec shim (``sh``) waits on stdin for the worker's ``go`` line: meanwhile the worker, as root, moves it into
  the run's cgroup, so bwrap and everything under it are bounded from their first instruction (no preexec_fn);
- a seccomp filter (``--seccomp FD``) refuses what grading never needs;
- what the box reads is bind-mounted read-only under a staging root only its group traverses; its output is a
  bounded tmpfs whose regular files are copied out after the run (``worker.sandbox.output``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from worker.sandbox.account import DEFAULT_USER, SandboxUser, sandbox_user
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
from worker.sandbox.output import OutputCaps, collect
from worker.sandbox.seccomp import SeccompUnavailable, bpf_fd
from worker.sandbox.staging import Staging

log = logging.getLogger(__name__)

# The uid and gid the box's processes see for themselves (the host sees the sandbox user's).
BOX_UID = 65534
GRADER_TARGET = "/opt/grader"
STAGING_ROOT = Path("/run/grader-sandbox")
# The system files the dynamic loader and Python need, and nothing else of the host's /etc.
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "mime.types")
SYSTEM_TOPS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
# The cap on how long a job's stdin write may block: a job that does not read its stdin is not waited for.
STDIN_WRITE_SECONDS = 10.0
# The shim: it lowers its own resource limits (soft and hard; bwrap and the box inherit them), then waits until
# the worker has put it into the run's cgroup and said so on stdin. Its arguments: bwrap, the args fd, the command.
SHIM = (
    "ulimit -c 0 && ulimit -f {fsize_blocks} && ulimit -n {nofile} && "
    'IFS= read -r go && [ "$go" = go ] && fd=$1 && shift && exec "$0" --args "$fd" -- "$@"; exit 125'
)


def shim_script(limits: Limits) -> str:
    # sh counts file sizes in blocks of 512 bytes.
    return SHIM.format(fsize_blocks=max(1, limits.file_size_bytes // 512), nofile=int(limits.nofile))


def _default_grader_dir() -> Path:
    spec = importlib.util.find_spec("grader")
    if spec is None or not spec.submodule_search_locations:
        raise SandboxUnavailable("the grader package cannot be found on this machine")
    return Path(next(iter(spec.submodule_search_locations)))


def _under_system_tops(path: str) -> bool:
    return any(path == f"/{top}" or path.startswith(f"/{top}/") for top in SYSTEM_TOPS)


class BubblewrapSandbox(Sandbox):
    """Runs each command in a fresh bubblewrap box inside a fresh cgroup, as the sandbox user.

    Only the Python runtime (``python_roots``), the system libraries, the grader package and the job's own
    mounts are visible, all read-only except the output tmpfs and a small /tmp.
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
        staging_root: str | Path = STAGING_ROOT,
        user: str = DEFAULT_USER,
        env: dict[str, str] | None = None,
        tail_bytes: int = TAIL_BYTES,
    ):
        found = shutil.which(bwrap)
        if found is None:
            raise SandboxUnavailable(f"bubblewrap ({bwrap}) is not installed")
        self.bwrap = found
        self.shell = shutil.which("sh", path="/usr/bin:/bin") or "/bin/sh"
        self.python = python or sys.executable
        roots = python_roots or [sys.prefix, sys.base_prefix]
        self.python_roots = list(dict.fromkeys(str(Path(r).absolute()) for r in roots))
        self.grader_dir = Path(grader_dir) if grader_dir else _default_grader_dir()
        self.cgroup_root = Path(cgroup_root)
        self.cgroup_parent = cgroup_parent
        self.staging_root = Path(staging_root)
        self.user_name = user
        self.extra_env = dict(env or {})
        self.tail_bytes = tail_bytes

    @property
    def user(self) -> SandboxUser:
        return sandbox_user(self.user_name)

    # -- building the box

    def environment(self, limits: Limits) -> dict[str, str]:
        """The whole environment of every process in the box, bwrap's init included: built from nothing."""
        env = base_environment(limits)
        env["PATH"] = f"{Path(self.python).parent}:/usr/local/bin:/usr/bin:/bin"
        env["PYTHONPATH"] = GRADER_TARGET
        if limits.gpu is not False and limits.gpu is not True:
            env["CUDA_VISIBLE_DEVICES"] = str(limits.gpu)
        env.update(self.extra_env)
        return env

    def _system_args(self) -> list[str]:
        args: list[str] = []
        for top in SYSTEM_TOPS:
            host = Path("/") / top
            if host.is_symlink():
                args += ["--symlink", os.readlink(host), f"/{top}"]
            elif host.is_dir():
                args += ["--ro-bind", str(host), f"/{top}"]
        for name in ETC_FILES:
            if (Path("/etc") / name).exists():
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
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

    def checked_mounts(self, mounts: list[Mount]) -> list[Mount]:
        reserved = tuple(self.python_roots) + (GRADER_TARGET,)
        return check_mounts(mounts, extra_reserved=reserved)

    def boxed_command(self, command: list[str]) -> list[str]:
        if not command:
            raise SandboxError("empty command")
        if command[0] == "python":
            return [self.python, *command[1:]]
        return list(command)

    def options(self, mounts: list[Mount], limits: Limits, *, staged: dict[str, Path], seccomp_fd: int) -> list[str]:
        """bwrap's options for one run: they travel through ``--args FD``, never on a command line.

        ``staged`` maps each mount target (and each runtime path) to the staging path the box's user can reach.
        """
        args = [
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--uid",
            str(BOX_UID),
            "--gid",
            str(BOX_UID),
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
            *self._system_args(),
        ]
        for root in self.python_roots:
            if not _under_system_tops(root):
                args += ["--ro-bind", str(staged[root]), root]
        args += ["--ro-bind", str(staged[GRADER_TARGET]), f"{GRADER_TARGET}/grader"]
        args += self._gpu_args(limits)
        for mount in mounts:
            args += ["--bind" if mount.writable else "--ro-bind", str(staged[mount.target]), mount.target]
        # The box's own root is a tmpfs bwrap builds; once laid out it becomes read-only too.
        args += ["--remount-ro", "/", "--chdir", "/tmp", "--seccomp", str(seccomp_fd)]  # noqa: S108
        return args

    # -- running it

    def run(self, command: list[str], mounts: list[Mount], limits: Limits, *, stdin: bytes | None = None) -> Outcome:
        box = _BubblewrapProcess(self, command, mounts, limits, warm=False)
        return box.finish(stdin or b"")

    def start(self, command: list[str], mounts: list[Mount], limits: Limits) -> RunningSandbox:
        return _BubblewrapProcess(self, command, mounts, limits, warm=True)


def _memfd_with(data: bytes, name: str) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class _BubblewrapProcess(RunningSandbox):
    """One bwrap process tree in its own cgroup and staging area; used by ``run`` and handed out by ``start``."""

    def __init__(self, sandbox: BubblewrapSandbox, command, mounts, limits: Limits, *, warm: bool):
        self.limits = limits
        self._finished: Outcome | None = None
        self._lock = threading.Lock()
        self._outputs: list[tuple[Path, Path]] = []
        user = sandbox.user
        command = sandbox.boxed_command(command)
        mounts = sandbox.checked_mounts(mounts)
        self.staging = Staging(sandbox.staging_root, user)
        self.cgroup: Cgroup | None = None
        fds: list[int] = []
        out_r = out_w = err_r = err_w = -1
        try:
            staged: dict[str, Path] = {}
            for root in sandbox.python_roots:
                if not _under_system_tops(root):
                    staged[root] = self.staging.bind_readonly(Path(root))
            staged[GRADER_TARGET] = self.staging.bind_readonly(sandbox.grader_dir.resolve())
            for mount in mounts:
                if mount.writable:
                    area = self.staging.output_tmpfs(size_bytes=limits.output_bytes, inodes=limits.output_files)
                    self._outputs.append((area, mount.source))
                    staged[mount.target] = area
                else:
                    staged[mount.target] = self.staging.bind_readonly(mount.source)
            try:
                seccomp_fd = bpf_fd()
            except SeccompUnavailable as exc:
                raise SandboxUnavailable(str(exc)) from exc
            fds.append(seccomp_fd)
            options = sandbox.options(mounts, limits, staged=staged, seccomp_fd=seccomp_fd)
            args_fd = _memfd_with(b"".join(a.encode() + b"\0" for a in options), "bwrap-args")
            fds.append(args_fd)
            self.cgroup = Cgroup.create(limits, root=sandbox.cgroup_root, parent=sandbox.cgroup_parent)
            self.cgroup.delegate(user.uid, user.gid)
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            self.started = time.monotonic()
            self.proc = subprocess.Popen(
                [sandbox.shell, "-c", shim_script(limits), sandbox.bwrap, str(args_fd), *command],
                stdin=subprocess.PIPE,
                stdout=out_w,
                stderr=err_w,
                env=sandbox.environment(limits),
                user=user.uid,
                group=user.gid,
                extra_groups=[],
                umask=0o077,
                pass_fds=tuple(fds),
                start_new_session=True,
                close_fds=True,
                cwd="/",
            )
            try:
                self.cgroup.enter(self.proc.pid)
                self.proc.stdin.write(b"go\n")
                self.proc.stdin.flush()
            except BaseException:
                self.proc.kill()
                self.proc.wait()
                raise
        except BaseException:
            for fd in (out_r, out_w, err_r, err_w, *fds):
                if fd >= 0:
                    os.close(fd)
            if self.cgroup is not None:
                self.cgroup.kill_all()
                self.cgroup.remove()
            self.staging.close()
            raise
        for fd in (out_w, err_w, *fds):
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
            self._cpu_at_start = self.cgroup.cpu_seconds()
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
        """Kill whatever is left (the cgroup), collect the output, detach the staging, remove the cgroup."""
        duration = time.monotonic() - self.started
        if self.proc.poll() is None:
            try:
                # bwrap's session runs as the sandbox user; the worker, as root, may signal it.
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
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
        cpu_end = self.cgroup.cpu_seconds()
        cpu_start = getattr(self, "_cpu_at_start", None)
        self.cgroup.remove()
        if not emptied:
            log.error("sandbox processes survived the kill; cgroup %s left in place", self.cgroup.dirs)
        collected = {}
        try:
            for area, dest in self._outputs:
                caps = OutputCaps(
                    files=min(64, self.limits.output_files),
                    file_bytes=self.limits.output_bytes,
                    total_bytes=self.limits.output_bytes,
                    names=self.limits.output_names,
                )
                report = collect(area, dest, caps)
                collected[str(dest)] = {
                    "files": report.files,
                    "refused": report.refused,
                    "bytes": report.bytes,
                    "owners": sorted(report.owners),
                }
        except OSError as exc:
            log.error("copying the box's output out failed: %s", exc)
            collected["error"] = str(exc)
        finally:
            self.staging.close()
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
                "cpu_seconds": None if cpu_end is None else round(cpu_end - (cpu_start or 0.0), 3),
                "cpu_seconds_total": cpu_end,
                "output": collected,
            },
        )
        return self._finished
