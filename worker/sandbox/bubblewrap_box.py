"""One bubblewrap box's life: staged, limited, started through the exec shim, fed its job, ended and emptied.

See ``worker.sandbox.bubblewrap`` for why each step is there.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from worker.sandbox.base import Limits, Outcome, OutputTail, RunningSandbox, SandboxError, SandboxUnavailable
from worker.sandbox.cgroups import Cgroup
from worker.sandbox.output import take_outputs
from worker.sandbox.seccomp import SeccompUnavailable, bpf_fd
from worker.sandbox.staging import Staging

if TYPE_CHECKING:
    from worker.sandbox.bubblewrap import BubblewrapSandbox, ForkServerView

log = logging.getLogger(__name__)

# The shim: it lowers its own resource limits (soft and hard; bwrap and the box inherit them), then waits until
# the worker has put it into the run's cgroup and said so on stdin. Its arguments: bwrap, the args fd, the command.
SHIM = (
    "ulimit -c 0 && ulimit -f {fsize_blocks} && ulimit -n {nofile} && "
    'IFS= read -r go && [ "$go" = go ] && fd=$1 && shift && exec "$0" --args "$fd" -- "$@"; exit 125'
)


def shim_script(limits: Limits) -> str:
    # sh counts file sizes in blocks of 512 bytes.
    return SHIM.format(fsize_blocks=max(1, limits.file_size_bytes // 512), nofile=int(limits.nofile))


def _memfd_with(data: bytes, name: str) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class BubblewrapBox(RunningSandbox):
    """One bwrap process tree in its own cgroup and staging area; used by ``run`` and handed out by ``start``."""

    def __init__(
        self,
        sandbox: BubblewrapSandbox,
        command,
        mounts,
        limits: Limits,
        *,
        warm: bool,
        fork_server: ForkServerView | None = None,
    ):
        self.limits = limits
        self.warm = warm
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
            staged = {key: self.staging.bind_readonly(source) for key, source in sandbox.runtime_to_stage().items()}
            for mount in mounts:
                if mount.writable:
                    area = self.staging.output_tmpfs(size_bytes=limits.output_bytes, inodes=limits.output_files)
                    self._outputs.append((area, mount.source))
                    staged[mount.target] = area
                else:
                    staged[mount.target] = self.staging.bind_readonly(mount.source)
            try:
                seccomp_fd = bpf_fd(fork_server=fork_server is not None)
            except SeccompUnavailable as exc:
                raise SandboxUnavailable(str(exc)) from exc
            fds.append(seccomp_fd)
            options = sandbox.options(mounts, limits, staged=staged, seccomp_fd=seccomp_fd, fork_server=fork_server)
            args_fd = _memfd_with(b"".join(a.encode() + b"\0" for a in options), "bwrap-args")
            fds.append(args_fd)
            self.cgroup = Cgroup.create(limits, root=sandbox.cgroup_root, parent=sandbox.cgroup_parent)
            self.cgroup.delegate(user.uid, user.gid)
            if warm:
                self.cgroup.set_cpu_weight("low")
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
                pass_fds=(*fds, *([fork_server.control_fd] if fork_server else [])),
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

    def memory_bytes(self) -> int | None:
        if self._finished is not None:
            return None
        return self.cgroup.memory_bytes()

    def prioritise(self) -> None:
        with self._lock:
            if self._finished is None:
                self.cgroup.set_cpu_weight("normal")

    def submit(self, stdin_line: bytes) -> Outcome:
        if not stdin_line.endswith(b"\n"):
            stdin_line += b"\n"
        self.prioritise()
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
        try:
            collected = take_outputs(self._outputs, self.limits)
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
