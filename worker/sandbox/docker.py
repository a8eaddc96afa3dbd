"""Sandbox backend on the Docker Engine (docker-py), for the production GPU nodes.

How a box starts, and why each step is there:
- the container's whole environment is set here: the image's own variables are blanked (the API cannot unset
  them), so nothing of the image or the worker's host reaches any process in it;
- its entrypoint is the command itself, so no entrypoint of the image runs first;
- it runs as the dedicated sandbox user (``worker.sandbox.account``), with no network, no capability, a read-only
  root, a small tmpfs ``/tmp``, memory, pids, CPU and ulimit bounds, and a seccomp profile when one is configured;
- its output is a bounded tmpfs the worker mounts on the host (``worker.sandbox.staging``) and the Engine binds in;
  after the run its regular files are copied out (``worker.sandbox.output``): the box never sees the host folder;
- its stdout and stderr are read live through an attach, keeping tails only, and the Engine logs nothing to disk;
- past the wall clock the container is killed, and every container is removed after its run
  (``worker.sandbox.docker_box``: one container's life).
The docker socket is never mounted into a box (``check_mounts`` refuses it).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import tempfile
from pathlib import Path, PurePosixPath

import docker
from docker.types import DeviceRequest, LogConfig, Ulimit
from docker.types import Mount as DockerMount

from worker.sandbox.account import DEFAULT_USER, SandboxUser, sandbox_user
from worker.sandbox.base import (
    DOCKER_SOCKETS,
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
from worker.sandbox.docker_box import ENGINE_ERRORS, DockerBox

log = logging.getLogger(__name__)

SANDBOX_LABEL = "course-platform.sandbox"
# Which worker process started a container ("host:pid"): a worker's start removes what dead workers of its host left.
OWNER_LABEL = "course-platform.sandbox.owner"


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


STAGING_ROOT = Path("/run/grader-sandbox")
# Where the grader image keeps the folder holding the ``grader`` package (platform/grader.Dockerfile).
IMAGE_PYTHONPATH = "/opt/course"
# What a runtime mount may not replace: the box's own root, kernel interfaces and private /tmp.
RUNTIME_REFUSED_TARGETS = ("/", "/proc", "/dev", "/sys", "/tmp")  # noqa: S108


class DockerSandbox(Sandbox):
    """Runs each command in a fresh container of the staff-built grader image, removed afterwards.

    ``runtime_mounts``: host folders or files bind-mounted read-only at their targets in every box, for an image
    that carries no runtime of its own (the tests' empty image gets the host's /usr, Python and grader package this
    way). Production's grader image carries its runtime and uses none.
    ``pythonpath``: the folder holding the ``grader`` package inside the box.
    ``seccomp_profile``: a Docker seccomp profile file (``platform/seccomp-grader.json``); None: the Engine's default.
    ``staging_root``: where the worker mounts each run's output tmpfs; the Engine must see the same path with the
    same mounts (the worker and the Engine share the host's mount namespace, or the folder is a shared mount).
    """

    name = "docker"

    def __init__(
        self,
        *,
        image: str = "course-platform-grader:latest",
        base_url: str = "unix:///var/run/docker.sock",
        python: str = "python",
        pythonpath: str = IMAGE_PYTHONPATH,
        runtime_mounts: list[Mount] | None = None,
        seccomp_profile: str | Path | None = None,
        staging_root: str | Path = STAGING_ROOT,
        user: str = DEFAULT_USER,
        env: dict[str, str] | None = None,
        api_timeout: float = 60.0,
        tail_bytes: int = TAIL_BYTES,
        client: docker.DockerClient | None = None,
    ):
        self.image = image
        self.base_url = base_url
        self.python = python
        self.pythonpath = pythonpath
        self.runtime_mounts = _checked_runtime_mounts(runtime_mounts or [])
        self.seccomp_profile = Path(seccomp_profile) if seccomp_profile else None
        self._seccomp_json = _read_profile(self.seccomp_profile) if self.seccomp_profile else None
        self.staging_root = Path(staging_root)
        self.user_name = user
        self.extra_env = dict(env or {})
        self.api_timeout = api_timeout
        self.tail_bytes = tail_bytes
        self._client = client

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = docker.DockerClient(base_url=self.base_url, timeout=self.api_timeout)
            except ENGINE_ERRORS as exc:
                raise SandboxUnavailable(f"cannot reach the Docker Engine at {self.base_url}: {exc}") from exc
        return self._client

    @property
    def user(self) -> SandboxUser:
        return sandbox_user(self.user_name)

    # -- building the box

    def environment(self, limits: Limits, *, image_env: list[str] = ()) -> dict[str, str]:
        """Every variable of every process in the box: built from nothing, the image's own ones blanked."""
        env = {key.partition("=")[0]: "" for key in image_env}
        env.update(base_environment(limits))
        bindir = f"{PurePosixPath(self.python).parent}:" if self.python.startswith("/") else ""
        env["PATH"] = f"{bindir}/usr/local/bin:/usr/bin:/bin"
        env["PYTHONPATH"] = self.pythonpath
        if limits.gpu is False:
            # An image or an Engine whose default runtime is nvidia would otherwise hand the box every GPU.
            env["NVIDIA_VISIBLE_DEVICES"] = "void"
        else:
            env["CUDA_VISIBLE_DEVICES"] = "0"  # the one GPU of the DeviceRequest, whatever its index on the host
        env.update(self.extra_env)
        return env

    def checked_mounts(self, mounts: list[Mount]) -> list[Mount]:
        reserved = tuple(m.target for m in self.runtime_mounts) + (self.pythonpath,)
        return check_mounts(mounts, extra_reserved=reserved)

    def boxed_command(self, command: list[str]) -> list[str]:
        if not command:
            raise SandboxError("empty command")
        if command[0] == "python":
            return [self.python, *command[1:]]
        return list(command)

    def create_arguments(
        self,
        command: list[str],
        binds: list[DockerMount],
        limits: Limits,
        *,
        image_id: str,
        image_env: list[str] = (),
        user: SandboxUser,
        stdin_open: bool = False,
    ) -> dict:
        """The keyword arguments of ``containers.create`` for one run: everything that confines it."""
        runtime = [DockerMount(m.target, str(m.source), type="bind", read_only=True) for m in self.runtime_mounts]
        security = ["no-new-privileges"]
        if self._seccomp_json is not None:
            security.append(f"seccomp={self._seccomp_json}")
        arguments = {
            "image": image_id,
            "entrypoint": command[:1],
            "command": command[1:],
            "network_mode": "none",
            "read_only": True,
            "tmpfs": {"/tmp": f"size={limits.tmp_bytes},noexec,nosuid,nodev"},  # noqa: S108
            "user": user.docker_user,
            "cap_drop": ["ALL"],
            "security_opt": security,
            "pids_limit": limits.pids,
            "mem_limit": limits.memory_bytes,
            "memswap_limit": limits.memory_bytes,
            "ulimits": [
                Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile),
                Ulimit(name="fsize", soft=limits.file_size_bytes, hard=limits.file_size_bytes),
                Ulimit(name="core", soft=0, hard=0),
            ],
            "mounts": runtime + list(binds),
            "environment": self.environment(limits, image_env=image_env),
            "working_dir": "/tmp",  # noqa: S108
            "hostname": "sandbox",
            "ipc_mode": "private",
            "cgroupns": "private",
            # The worker reads the streams live and keeps tails; nothing a box prints is written to the host's disk.
            "log_config": LogConfig(type=LogConfig.types.NONE),
            "labels": {SANDBOX_LABEL: "1", OWNER_LABEL: owner()},
            "stdin_open": stdin_open,
        }
        if limits.cpus is not None:
            arguments["nano_cpus"] = int(limits.cpus * 1e9)
        if limits.gpu is True:
            arguments["device_requests"] = [DeviceRequest(count=1, capabilities=[["gpu"]])]
        elif limits.gpu is not False:
            arguments["device_requests"] = [DeviceRequest(device_ids=[str(limits.gpu)], capabilities=[["gpu"]])]
        return arguments

    # -- running it

    def run(self, command: list[str], mounts: list[Mount], limits: Limits, *, stdin: bytes | None = None) -> Outcome:
        box = DockerBox(self, command, mounts, limits, stdin_open=stdin is not None, warm=False)
        return box.finish(stdin)

    def start(
        self, command: list[str], mounts: list[Mount], limits: Limits, *, template: ForkTemplate | None = None
    ) -> RunningSandbox:
        # A container per box, always: forking boxes from a server inside a container would need the container to
        # create namespaces, which its seccomp profile refuses.
        """Create and start the container now; it prints ``ready`` when warm, then reads its job line."""
        return DockerBox(self, command, mounts, limits, stdin_open=True, warm=True)

    def sweep_leftovers(self) -> int:
        """Remove the containers that worker processes of this host left when they died (killed mid-run)."""
        host = socket.gethostname()
        removed = 0
        try:
            containers = self.client.containers.list(all=True, filters={"label": SANDBOX_LABEL})
        except ENGINE_ERRORS as exc:
            log.warning("cannot list sandbox containers to sweep: %s", exc)
            return 0
        for container in containers:
            name, _, pid = (container.labels.get(OWNER_LABEL) or "").rpartition(":")
            if name != host or not pid.isdigit() or _alive(int(pid)):
                continue
            try:
                container.remove(force=True)
                removed += 1
            except ENGINE_ERRORS as exc:
                log.warning("cannot remove the left-over sandbox container %s: %s", container.id, exc)
        return removed

    def probe(self) -> None:
        """The Engine answers, a confined container runs, and its output tmpfs really reaches the worker."""
        try:
            self.client.ping()
        except ENGINE_ERRORS as exc:
            raise SandboxUnavailable(f"the Docker Engine at {self.base_url} does not answer: {exc}") from exc
        limits = Limits(wall_seconds=60, memory_bytes=256 * 1024**2, pids=32, tmp_bytes=16 * 1024**2)
        code = "print('sandbox-ok'); open('/probe/out/seen', 'w').write('seen')"
        with tempfile.TemporaryDirectory(prefix="docker-probe-") as dest:
            try:
                outcome = self.run(["python", "-c", code], [Mount(Path(dest), "/probe/out", writable=True)], limits)
            except SandboxUnavailable:
                raise
            except Exception as exc:
                raise SandboxUnavailable(f"docker sandbox probe failed: {exc!r}") from exc
            if outcome.exit_code != 0 or outcome.stdout_tail.strip() != "sandbox-ok":
                raise SandboxUnavailable(
                    f"docker sandbox probe failed: exit {outcome.exit_code}, timed out {outcome.timed_out}, "
                    f"stderr: {outcome.stderr_tail[-2000:]}"
                )
            seen = Path(dest, "seen")
            if not seen.is_file() or seen.read_text() != "seen":
                raise SandboxUnavailable(
                    f"the Docker Engine does not see the output tmpfs the worker mounts under {self.staging_root}: "
                    "the worker and the Engine must share that folder (same path, shared mount propagation)"
                )

    # -- talking to the Engine

    def image_config(self) -> tuple[str, list[str]]:
        """The image's id (the container is created from exactly the image inspected) and its own variables."""
        try:
            attrs = self.client.api.inspect_image(self.image)
        except docker.errors.ImageNotFound as exc:
            raise SandboxUnavailable(f"the grader image {self.image} is not on this node; build it first") from exc
        except ENGINE_ERRORS as exc:
            raise SandboxUnavailable(f"cannot inspect the grader image {self.image}: {exc}") from exc
        return attrs["Id"], list((attrs.get("Config") or {}).get("Env") or [])

    def create_container(self, arguments: dict):
        try:
            return self.client.containers.create(**arguments)
        except ENGINE_ERRORS as exc:
            raise SandboxUnavailable(f"cannot create a sandbox container from {self.image}: {exc}") from exc

    def remove_container(self, container) -> bool:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except ENGINE_ERRORS as exc:
            log.error("removing sandbox container %s failed: %s", container.id, exc)
            return False
        return True


def _read_profile(path: Path) -> str:
    try:
        profile = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SandboxUnavailable(f"the seccomp profile {path} cannot be read: {exc}") from exc
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise SandboxUnavailable(f"{path} is not a Docker seccomp profile")
    return json.dumps(profile, separators=(",", ":"))


def _checked_runtime_mounts(mounts: list[Mount]) -> list[Mount]:
    """Runtime mounts are read-only host paths at plain absolute targets; never a socket."""
    checked = []
    for mount in mounts:
        if mount.writable:
            raise SandboxError(f"a runtime mount is read-only: {mount.target}")
        source = Path(mount.source).resolve(strict=True)
        if str(source) in DOCKER_SOCKETS or stat.S_ISSOCK(source.stat().st_mode):
            raise SandboxError(f"refusing to mount a socket into a sandbox: {source}")
        target = PurePosixPath(mount.target)
        if not target.is_absolute() or ".." in target.parts or str(target) in RUNTIME_REFUSED_TARGETS:
            raise SandboxError(f"a runtime mount needs a plain absolute target: {mount.target!r}")
        checked.append(Mount(source=source, target=str(target)))
    return checked
