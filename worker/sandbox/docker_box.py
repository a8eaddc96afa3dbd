"""One box on the Docker Engine, from its creation to its removal: its streams, its wall clock, its output.

The container is attached before it starts, so its stdout and stderr are read live (only their tails are kept)
and its stdin is the worker's; its CPU time is sampled from the Engine's stats while it lives, since its cgroup
goes with it; after its end it is removed, then its output tmpfs is copied out and detached.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import requests
from docker.types import Mount as DockerMount

from worker.sandbox.account import SandboxUser
from worker.sandbox.base import Limits, Outcome, OutputTail, RunningSandbox, SandboxError, SandboxUnavailable
from worker.sandbox.output import take_outputs
from worker.sandbox.staging import Staging

if TYPE_CHECKING:
    from worker.sandbox.docker import DockerSandbox

log = logging.getLogger(__name__)

ENGINE_ERRORS = (docker.errors.DockerException, requests.RequestException)
# A container warming ahead of its job runs at the least CPU weight Docker allows (cgroup v1 cpu.shares, mapped to
# cpu.weight on v2), so it takes only CPU that running jobs leave idle; handed its job, it gets the default back.
WARMING_CPU_SHARES = 2
NORMAL_CPU_SHARES = 1024
# The attach stream multiplexes stdout (1) and stderr (2) in frames with an 8-byte header.
FRAME_HEADER = 8
# How long the worker waits for an Engine call that ends a run (wait after a kill, inspect, remove).
SETTLE_SECONDS = 15.0


class _Streams:
    """Splits the attach stream into stdout and stderr tails, live, through two pipes into OutputTails."""

    def __init__(self, sock: socket.socket, *, tail_bytes: int, warm: bool):
        self.sock = sock
        out_r, self._out_w = os.pipe()
        err_r, self._err_w = os.pipe()
        self.stdout = OutputTail(out_r, limit=tail_bytes, ready_marker=b"ready" if warm else None)
        self.stderr = OutputTail(err_r, limit=tail_bytes)
        self._thread = threading.Thread(target=self._split, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _read_exactly(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(min(65536, size - len(data)))
            if not chunk:
                return None
            data += chunk
        return data

    def _split(self) -> None:
        try:
            while True:
                header = self._read_exactly(FRAME_HEADER)
                if header is None:
                    break
                size = int.from_bytes(header[4:8], "big")
                target = self._err_w if header[0] == 2 else self._out_w
                while size > 0:
                    chunk = self.sock.recv(min(65536, size))
                    if not chunk:
                        return
                    size -= len(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(target, view) :]
        except OSError:
            pass
        finally:
            for fd in (self._out_w, self._err_w):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def send_stdin(self, data: bytes) -> None:
        """Send ``data`` then end the container's stdin (its config says StdinOnce), in a thread of its own."""

        def feed():
            try:
                if data:
                    self.sock.sendall(data)
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        threading.Thread(target=feed, daemon=True).start()

    def close(self) -> None:
        """After the container's end: the Engine closes the stream; an attach it left open is shut here."""
        self._thread.join(5)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._thread.join(5)
        self.stdout.join()
        self.stderr.join()
        try:
            self.sock.close()
        except OSError:
            pass


class DockerBox(RunningSandbox):
    """One container, its output tmpfs and its streams; used by ``run`` and handed out by ``start``."""

    def __init__(self, sandbox: DockerSandbox, command, mounts, limits: Limits, *, stdin_open: bool, warm: bool):
        self.sandbox = sandbox
        self.limits = limits
        self.warm = warm
        self._lock = threading.Lock()
        self._finished: Outcome | None = None
        self._outputs: list[tuple[Path, Path]] = []
        self._cpu_ns: int | None = None
        self._cpu_at_start: int | None = None
        self._ended = threading.Event()
        self.staging: Staging | None = None
        self.container = None
        self.streams: _Streams | None = None
        command = sandbox.boxed_command(command)
        mounts = sandbox.checked_mounts(mounts)
        user = sandbox.user
        image_id, image_env = sandbox.image_config()
        try:
            binds = []
            for mount in mounts:
                if mount.writable:
                    area = self._output_area(sandbox, user, limits)
                    self._outputs.append((area, mount.source))
                    binds.append(DockerMount(mount.target, str(area), type="bind", read_only=False))
                else:
                    binds.append(DockerMount(mount.target, str(mount.source), type="bind", read_only=True))
            arguments = sandbox.create_arguments(
                command, binds, limits, image_id=image_id, image_env=image_env, user=user, stdin_open=stdin_open
            )
            if warm:
                arguments["cpu_shares"] = WARMING_CPU_SHARES
            self.container = sandbox.create_container(arguments)
            try:
                # Attached before the start, so that nothing the box prints is lost and its stdin is ours.
                params = {"stdin": int(stdin_open), "stdout": 1, "stderr": 1, "stream": 1}
                raw = sandbox.client.api.attach_socket(self.container.id, params=params)
                sock = getattr(raw, "_sock", raw)
                sock.settimeout(None)  # a box may stay silent for as long as its wall clock allows
                self.streams = _Streams(sock, tail_bytes=sandbox.tail_bytes, warm=warm)
                self.streams.start()
                self.started = time.monotonic()
                self.container.start()
            except ENGINE_ERRORS as exc:
                raise SandboxUnavailable(f"cannot start a sandbox container: {exc}") from exc
            threading.Thread(target=self._sample_cpu, daemon=True).start()
        except BaseException:
            self._ended.set()
            if self.container is not None:
                sandbox.remove_container(self.container)
            if self.streams is not None:
                self.streams.close()
            if self.staging is not None:
                self.staging.close()
            raise

    def _output_area(self, sandbox: DockerSandbox, user: SandboxUser, limits: Limits) -> Path:
        if self.staging is None:
            if os.geteuid() != 0:
                raise SandboxUnavailable("the Docker backend runs as root: it mounts each box's output tmpfs")
            self.staging = Staging(sandbox.staging_root, user)
        return self.staging.output_tmpfs(size_bytes=limits.output_bytes, inodes=limits.output_files)

    # -- CPU time: the Engine's stats, sampled while the container lives (its cgroup goes with it)

    def _sample_cpu(self) -> None:
        try:
            for sample in self.sandbox.client.api.stats(self.container.id, stream=True, decode=True):
                self._keep_cpu(sample)
                if self._ended.is_set():
                    return
        except (*ENGINE_ERRORS, ValueError):
            pass

    def _keep_cpu(self, sample: dict) -> None:
        usage = ((sample.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0
        if usage:  # a stopped container reports zeros
            self._cpu_ns = max(self._cpu_ns or 0, int(usage))

    def _cpu_now(self) -> int | None:
        try:
            self._keep_cpu(self.sandbox.client.api.stats(self.container.id, stream=False, one_shot=True))
        except (*ENGINE_ERRORS, ValueError):
            pass
        return self._cpu_ns

    def memory_bytes(self) -> int | None:
        if self._finished is not None:
            return None
        try:
            sample = self.sandbox.client.api.stats(self.container.id, stream=False, one_shot=True)
        except (*ENGINE_ERRORS, ValueError):
            return None
        usage = (sample.get("memory_stats") or {}).get("usage")
        return int(usage) if usage else None

    # -- the run

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        stdout = self.streams.stdout
        while time.monotonic() < deadline:
            if stdout.ready.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
                return True
            if stdout.closed.is_set():  # the container ended (or closed its stdout) without saying ready
                return stdout.ready.is_set()
        return stdout.ready.is_set()

    def prioritise(self) -> None:
        if not self.warm or self._finished is not None:
            return
        try:
            self.container.update(cpu_shares=NORMAL_CPU_SHARES)
        except ENGINE_ERRORS as exc:
            log.warning("cannot raise the CPU weight of sandbox container %s: %s", self.container.id, exc)

    def submit(self, stdin_line: bytes) -> Outcome:
        if not stdin_line.endswith(b"\n"):
            stdin_line += b"\n"
        self.prioritise()
        return self.finish(stdin_line)

    def finish(self, stdin: bytes | None) -> Outcome:
        with self._lock:
            if self._finished is not None:
                raise SandboxError("this sandbox has already run its job")
            if self.warm:
                self._cpu_at_start = self._cpu_now()
            self.started = time.monotonic()
            if stdin is not None:
                self.streams.send_stdin(stdin)
            timed_out = False
            exit_code = None
            try:
                exit_code = self.container.wait(timeout=self.limits.wall_seconds)["StatusCode"]
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
                # docker-py reports a read timeout on a unix socket as either of the two.
                if time.monotonic() - self.started >= self.limits.wall_seconds * 0.99:
                    timed_out = True
                else:
                    log.error("waiting for sandbox container %s failed: %s", self.container.id, exc)
            except ENGINE_ERRORS as exc:
                log.error("waiting for sandbox container %s failed: %s", self.container.id, exc)
            return self._conclude(timed_out=timed_out, exit_code=exit_code)

    def kill(self) -> Outcome:
        with self._lock:
            if self._finished is not None:
                return self._finished
            return self._conclude(timed_out=False, exit_code=None)

    def _conclude(self, *, timed_out: bool, exit_code: int | None) -> Outcome:
        """Kill what is left, read the ending, remove the container, copy the output out, detach the staging."""
        duration = time.monotonic() - self.started
        container = self.container
        if exit_code is None:
            self._cpu_now()
            try:
                container.kill()
            except ENGINE_ERRORS:
                pass  # it had ended already
            try:
                exit_code = container.wait(timeout=SETTLE_SECONDS)["StatusCode"]
            except ENGINE_ERRORS as exc:
                log.error("sandbox container %s does not stop: %s", container.id, exc)
        self._ended.set()
        oom = False
        try:
            state = self.sandbox.client.api.inspect_container(container.id)["State"]
            oom = bool(state.get("OOMKilled"))
            if exit_code is None:
                exit_code = state.get("ExitCode")
        except ENGINE_ERRORS as exc:
            log.error("inspecting sandbox container %s failed: %s", container.id, exc)
        removed = self.sandbox.remove_container(container)
        self.streams.close()
        collected = self._collect()
        cpu_end = self._cpu_ns
        cpu = None if cpu_end is None else round((cpu_end - (self._cpu_at_start or 0)) / 1e9, 3)
        self._finished = Outcome(
            exit_code=exit_code,
            timed_out=timed_out,
            oom_killed=oom,
            stdout_tail=self.streams.stdout.text(),
            stderr_tail=self.streams.stderr.text(),
            duration_s=duration,
            details={
                "backend": "docker",
                "container": container.id,
                "removed": removed,
                "image": self.sandbox.image,
                # Sampled by the Engine about once a second while the container ran: the last second may be missing.
                "cpu_seconds": cpu,
                "cpu_seconds_total": None if cpu_end is None else round(cpu_end / 1e9, 3),
                "output": collected,
            },
        )
        return self._finished

    def _collect(self) -> dict:
        try:
            return take_outputs(self._outputs, self.limits)
        finally:
            if self.staging is not None:
                self.staging.close()
