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
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from worker.sandbox.account import DEFAULT_USER, SandboxUser, sandbox_user
from worker.sandbox.base import (
    TAIL_BYTES,
    ForkTemplate,
    Limits,
    Mount,
    Outcome,
    RunningSandbox,
    Sandbox,
    SandboxError,
    SandboxUnavailable,
    base_environment,
    check_mounts,
)
from worker.sandbox.bubblewrap_box import BubblewrapBox
from worker.sandbox.cgroups import CGROUP_ROOT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForkServerView:
    """What a fork server's box has that a job's box has not: the spool where the worker mounts each job's files
    (seen at ``/jobs``), the per-job mount targets, and the control socket's descriptor."""

    spool: Path
    job_targets: tuple[str, ...]
    control_fd: int


FORK_SPOOL = "/jobs"
IDLE_SERVER_S = 600.0
# The uid and gid the box's processes see for themselves (the host sees the sandbox user's).
BOX_UID = 65534
GRADER_TARGET = "/opt/grader"
STAGING_ROOT = Path("/run/grader-sandbox")
# The system files the dynamic loader and Python need, and nothing else of the host's /etc.
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "mime.types")
SYSTEM_TOPS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")


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
        fork_servers: int = 0,
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
        # How many fork servers (one per lab configuration) this backend keeps; 0: every box starts from nothing.
        self.fork_servers = fork_servers
        self._servers: dict[tuple, object] = {}
        self._servers_lock = threading.Lock()

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

    def runtime_to_stage(self) -> dict[str, Path]:
        """What of the runtime the box sees through the staging area: the Python roots outside the system folders,
        and the grader package, by the key ``options`` looks them up with."""
        staged = {root: Path(root) for root in self.python_roots if not _under_system_tops(root)}
        staged[GRADER_TARGET] = self.grader_dir.resolve()
        return staged

    def checked_mounts(self, mounts: list[Mount]) -> list[Mount]:
        reserved = tuple(self.python_roots) + (GRADER_TARGET, FORK_SPOOL)
        return check_mounts(mounts, extra_reserved=reserved)

    def boxed_command(self, command: list[str]) -> list[str]:
        if not command:
            raise SandboxError("empty command")
        if command[0] == "python":
            return [self.python, *command[1:]]
        return list(command)

    def options(
        self,
        mounts: list[Mount],
        limits: Limits,
        *,
        staged: dict[str, Path],
        seccomp_fd: int,
        fork_server: ForkServerView | None = None,
    ) -> list[str]:
        """bwrap's options for one run: they travel through ``--args FD``, never on a command line.

        ``staged`` maps each mount target (and each runtime path) to the staging path the box's user can reach.
        A fork server's box may create namespaces (its boxes' own: each box then refuses them, as every box does),
        sees its spool at ``/jobs`` and has an empty folder at each per-job target for its boxes to mount on.
        """
        args = [
            "--unshare-all",
            "--unshare-user",
            *([] if fork_server else ["--disable-userns"]),
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
        if fork_server is not None:
            args += ["--bind", str(fork_server.spool), FORK_SPOOL]
            for target in fork_server.job_targets:
                args += ["--dir", target]
        # The box's own root is a tmpfs bwrap builds; once laid out it becomes read-only too.
        args += ["--remount-ro", "/", "--chdir", "/tmp", "--seccomp", str(seccomp_fd)]  # noqa: S108
        return args

    # -- running it

    def run(self, command: list[str], mounts: list[Mount], limits: Limits, *, stdin: bytes | None = None) -> Outcome:
        box = BubblewrapBox(self, command, mounts, limits, warm=False)
        return box.finish(stdin or b"")

    def start(
        self, command: list[str], mounts: list[Mount], limits: Limits, *, template: ForkTemplate | None = None
    ) -> RunningSandbox:
        if template is None or self.fork_servers <= 0:
            return BubblewrapBox(self, command, mounts, limits, warm=True)
        mounts = self.checked_mounts(mounts)
        shared = [m for m in mounts if m.shared]
        own = [m for m in mounts if not m.shared]
        server = self._fork_server(template, shared, own, limits)
        return server.fork(own, limits, cuda=template.cuda)

    def _fork_server(self, template: ForkTemplate, shared: list[Mount], own: list[Mount], limits: Limits):
        """The live server of this template, shared mounts, per-job targets and limits; started when missing.

        At most ``fork_servers`` are kept: the least recently used idle one makes room for a new one (a server with
        a box still alive is never stopped: that would end the box)."""
        from worker.sandbox.forkserver import ForkServer

        key = (
            tuple(self.boxed_command(list(template.command))),
            tuple((str(m.source), m.target) for m in shared),
            tuple(m.target for m in own),
            limits,
        )
        with self._servers_lock:
            # A server no box has come from for a while (its lab is no longer served here) gives its memory back.
            now = time.monotonic()
            for stale in [k for k, s in self._servers.items() if not s.busy() and now - s.last_used > IDLE_SERVER_S]:
                self._servers.pop(stale).close()
            server = self._servers.get(key)
            if server is not None and not server.alive():
                log.warning("the fork server for %s is gone; starting a new one", template.command)
                self._servers.pop(key).close()
                server = None
            if server is None:
                idle = sorted((s.last_used, k) for k, s in self._servers.items() if not s.busy())
                while len(self._servers) >= self.fork_servers and idle:
                    self._servers.pop(idle.pop(0)[1]).close()
                server = ForkServer(self, list(key[0]), shared, key[2], limits)
                self._servers[key] = server
            return server

    def fork_server_count(self) -> int:
        with self._servers_lock:
            return len(self._servers)

    def close(self) -> None:
        with self._servers_lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.close()
