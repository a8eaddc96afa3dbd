"""Sandbox backend on the Docker Engine (docker-py), for the production GPU nodes."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import replace

import docker
import requests
from docker.types import DeviceRequest, Ulimit

from worker.sandbox.base import (
    TAIL_BYTES,
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

log = logging.getLogger(__name__)

SANDBOX_LABEL = "course-platform.sandbox"


class DockerSandbox(Sandbox):
    """Runs each command in a fresh container of the staff-built grader image, removed afterwards."""

    name = "docker"

    def __init__(
        self,
        *,
        image: str = "course-platform-grader:latest",
        base_url: str = "unix:///var/run/docker.sock",
        python: str = "python",
        user: str = "65534:65534",
        env: dict[str, str] | None = None,
        api_timeout: float = 60.0,
        tail_bytes: int = TAIL_BYTES,
        client: docker.DockerClient | None = None,
    ):
        self.image = image
        self.base_url = base_url
        self.python = python
        self.user = user
        self.extra_env = dict(env or {})
        self.api_timeout = api_timeout
        self.tail_bytes = tail_bytes
        self._client = client

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = docker.DockerClient(base_url=self.base_url, timeout=self.api_timeout)
            except docker.errors.DockerException as exc:
                raise SandboxUnavailable(f"cannot reach the Docker Engine at {self.base_url}: {exc}") from exc
        return self._client

    def create_arguments(
        self, command: list[str], mounts: list[Mount], limits: Limits, *, stdin_open: bool = False
    ) -> dict:
        """The keyword arguments of ``containers.create`` for one run: everything that confines it."""
        if not command:
            raise SandboxError("empty command")
        if command[0] == "python":
            command = [self.python, *command[1:]]
        mounts = check_mounts(mounts)
        env = base_environment(limits)
        env.update(self.extra_env)
        arguments = {
            "image": self.image,
            "command": command,
            "network_mode": "none",
            "read_only": True,
            "tmpfs": {"/tmp": f"size={limits.tmp_bytes},noexec,nosuid,nodev"},  # noqa: S108
            "user": self.user,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "pids_limit": limits.pids,
            "mem_limit": limits.memory_bytes,
            "memswap_limit": limits.memory_bytes,
            "ulimits": [
                Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile),
                Ulimit(name="fsize", soft=limits.file_size_bytes, hard=limits.file_size_bytes),
                Ulimit(name="core", soft=0, hard=0),
            ],
            "volumes": {str(m.source): {"bind": m.target, "mode": "rw" if m.writable else "ro"} for m in mounts},
            "environment": env,
            "working_dir": "/tmp",  # noqa: S108
            "hostname": "sandbox",
            "ipc_mode": "private",
            "labels": {SANDBOX_LABEL: "1"},
            "stdin_open": stdin_open,
        }
        if limits.cpus is not None:
            arguments["nano_cpus"] = int(limits.cpus * 1e9)
        if limits.gpu is True:
            arguments["device_requests"] = [DeviceRequest(count=1, capabilities=[["gpu"]])]
        elif limits.gpu is not False:
            one_gpu = DeviceRequest(device_ids=[str(limits.gpu)], capabilities=[["gpu"]])
            arguments["device_requests"] = [one_gpu]
        return arguments

    def run(self, command: list[str], mounts: list[Mount], limits: Limits, *, stdin: bytes | None = None) -> Outcome:
        if stdin:
            return self.start(command, mounts, limits).submit(stdin)
        container = self._create(self.create_arguments(command, mounts, limits))
        try:
            started = time.monotonic()
            container.start()
            return self._wait(container, limits, started)
        finally:
            self._remove(container)

    def start(self, command: list[str], mounts: list[Mount], limits: Limits) -> RunningSandbox:
        """Create and start the container now; it prints ``ready`` when warm, then reads its job line."""
        container = self._create(self.create_arguments(command, mounts, limits, stdin_open=True))
        return _DockerRunning(self, container, limits)

    def probe(self) -> None:
        try:
            self.client.ping()
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise SandboxUnavailable(f"the Docker Engine at {self.base_url} does not answer: {exc}") from exc
        super().probe()

    # -- the container's life

    def _create(self, arguments: dict):
        try:
            return self.client.containers.create(**arguments)
        except (docker.errors.ImageNotFound, docker.errors.APIError, requests.RequestException) as exc:
            raise SandboxUnavailable(f"cannot create a sandbox container from {self.image}: {exc}") from exc

    def _wait(self, container, limits: Limits, started: float) -> Outcome:
        timed_out = False
        exit_code = None
        remaining = max(0.1, limits.wall_seconds - (time.monotonic() - started))
        try:
            exit_code = container.wait(timeout=remaining)["StatusCode"]
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            timed_out = True
            try:
                container.kill()
            except docker.errors.APIError as exc:
                log.warning("killing sandbox container %s failed: %s", container.id, exc)
        duration = time.monotonic() - started
        stdout = self._tail(container, stdout=True)
        stderr = self._tail(container, stdout=False)
        oom = False
        try:
            container.reload()
            state = container.attrs.get("State", {})
            oom = bool(state.get("OOMKilled"))
            if exit_code is None:
                exit_code = state.get("ExitCode")
        except docker.errors.APIError as exc:
            log.warning("inspecting sandbox container %s failed: %s", container.id, exc)
        return Outcome(
            exit_code=exit_code,
            timed_out=timed_out,
            oom_killed=oom,
            stdout_tail=stdout,
            stderr_tail=stderr,
            duration_s=duration,
            details={"backend": "docker", "container": container.id, "image": self.image},
        )

    def _tail(self, container, *, stdout: bool) -> str:
        """The last ``tail_bytes`` of one stream, read streaming so a flood of output never sits in memory."""
        chunks: deque[bytes] = deque()
        size = 0
        try:
            for chunk in container.logs(stdout=stdout, stderr=not stdout, stream=True, follow=False):
                chunks.append(chunk)
                size += len(chunk)
                while size - len(chunks[0]) >= self.tail_bytes:
                    size -= len(chunks.popleft())
        except (docker.errors.APIError, requests.RequestException) as exc:
            log.warning("reading logs of sandbox container %s failed: %s", container.id, exc)
        return b"".join(chunks)[-self.tail_bytes :].decode("utf-8", errors="replace")

    def _remove(self, container) -> None:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except (docker.errors.APIError, requests.RequestException) as exc:
            log.error("removing sandbox container %s failed: %s", container.id, exc)


class _DockerRunning(RunningSandbox):
    """A started container whose interpreter warms up; its job line goes in through an attached stdin."""

    def __init__(self, sandbox: DockerSandbox, container, limits: Limits):
        self.sandbox = sandbox
        self.container = container
        self.limits = limits
        self._done: Outcome | None = None
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._ended = threading.Event()
        try:
            # Attached before the start so that nothing the job sends can be lost.
            sock = container.attach_socket(params={"stdin": 1, "stream": 1})
            self._stdin = getattr(sock, "_sock", sock)
            container.start()
        except (docker.errors.APIError, requests.RequestException) as exc:
            sandbox._remove(container)
            raise SandboxUnavailable(f"cannot start a sandbox container: {exc}") from exc
        threading.Thread(target=self._watch_for_ready, daemon=True).start()

    def _watch_for_ready(self) -> None:
        pending = b""
        try:
            for chunk in self.container.logs(stdout=True, stderr=False, stream=True, follow=True):
                pending += chunk
                lines = pending.split(b"\n")
                if any(line.strip() == b"ready" for line in lines[:-1]):
                    self._ready.set()
                    return
                pending = lines[-1][-4096:]
        except (docker.errors.APIError, requests.RequestException):
            pass
        finally:
            self._ended.set()

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready.wait(0.05):
                return True
            if self._ended.is_set():
                return self._ready.is_set()
        return self._ready.is_set()

    def submit(self, stdin_line: bytes) -> Outcome:
        with self._lock:
            if self._done is not None:
                raise SandboxError("this sandbox has already run its job")
            if not stdin_line.endswith(b"\n"):
                stdin_line += b"\n"
            started = time.monotonic()
            try:
                try:
                    self._stdin.sendall(stdin_line)
                except OSError as exc:
                    log.warning("sending the job to container %s failed: %s", self.container.id, exc)
                outcome = self.sandbox._wait(self.container, self.limits, started)
            finally:
                self._close_stdin()
                self.sandbox._remove(self.container)
            self._done = _without_ready_line(outcome)
            return self._done

    def kill(self) -> Outcome:
        with self._lock:
            if self._done is None:
                try:
                    self.container.kill()
                except (docker.errors.APIError, requests.RequestException):
                    pass
                outcome = self.sandbox._wait(self.container, self.limits, time.monotonic())
                self._close_stdin()
                self.sandbox._remove(self.container)
                self._done = _without_ready_line(outcome)
            return self._done

    def _close_stdin(self) -> None:
        try:
            self._stdin.close()
        except OSError:
            pass


def _without_ready_line(outcome: Outcome) -> Outcome:
    head, sep, rest = outcome.stdout_tail.partition("\n")
    if sep and head.strip() == "ready":
        return replace(outcome, stdout_tail=rest)
    return outcome
