"""Fork servers for the bubblewrap backend: a lab's imports paid once, a new box per job at the cost of a fork.

A fork server is a bubblewrap box (``python -m grader fork-server``) holding the mounts every job of its key shares
(the runtime, the dataset, the base model) and a spool at ``/jobs``: a tmpfs of the worker's whose later mounts
propagate into the server's box. For each box, the worker mounts that job's files under ``spool/<id>/`` (its
submission read-only, its output a bounded tmpfs), creates the job's cgroup, and asks the server to fork. The
server's child is moved into the job's cgroup before it goes on; then it and the box's init build the box's own
namespaces and mounts and load the strict seccomp filter (``grader.forkbox`` tells how). From there the box is
used like any started box: it says ready, takes one job line on stdin, and ends.

The server runs no student input and holds no job's data; it dies with its worker, and its boxes die with it (its
PID namespace takes them). A server that died or misbehaved is replaced by a new one at the next start.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from worker.sandbox.base import Limits, Mount, Outcome, OutputTail, RunningSandbox, SandboxError, SandboxUnavailable
from worker.sandbox.bubblewrap_box import BubblewrapBox
from worker.sandbox.cgroups import Cgroup
from worker.sandbox.output import take_outputs
from worker.sandbox.seccomp import SeccompUnavailable, bpf_fd
from worker.sandbox.staging import Staging

if TYPE_CHECKING:
    from worker.sandbox.bubblewrap import BubblewrapSandbox

log = logging.getLogger(__name__)

MAX_MESSAGE = 65536
REPLY_SECONDS = 10.0


def _ns_pids(pid: int) -> list[int]:
    """A process's PID in each PID namespace it belongs to, the host's first (``NSpid`` of its status)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("NSpid:"):
                    return [int(p) for p in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return []


class ForkServer:
    """One key's server: its box, its spool and its control socket, and the boxes forked from it."""

    def __init__(self, sandbox: BubblewrapSandbox, command: list[str], shared: list[Mount], targets, limits: Limits):
        from worker.sandbox.bubblewrap import ForkServerView

        self.sandbox = sandbox
        self.targets = tuple(targets)
        self.limits = limits
        self.last_used = time.monotonic()
        self._lock = threading.Lock()
        self._boxes: dict[str, ForkedBox] = {}
        self._closed = threading.Event()
        self.staging = Staging(sandbox.staging_root, sandbox.user)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.spool = self.staging.shared_spool()
            view = ForkServerView(spool=self.spool, job_targets=self.targets, control_fd=theirs.fileno())
            command = [*command, "--control-fd", str(theirs.fileno())]
            command += [f"--job-target={target}" for target in self.targets]
            self.box = BubblewrapBox(sandbox, command, shared, limits, warm=True, fork_server=view)
        except BaseException:
            ours.close()
            theirs.close()
            self.staging.close()
            raise
        theirs.close()
        self.control = ours
        try:
            strict = bpf_fd()
        except SeccompUnavailable as exc:
            self.close()
            raise SandboxUnavailable(str(exc)) from exc
        try:
            socket.send_fds(self.control, [json.dumps({"op": "filter"}).encode()], [strict])
        finally:
            os.close(strict)
        self._reader = threading.Thread(target=self._read_replies, daemon=True, name="fork-server-replies")
        self._reader.start()

    # -- the server's side of the conversation

    def _send(self, message: dict, fds: list[int] | None = None) -> None:
        data = json.dumps(message).encode()
        if fds:
            socket.send_fds(self.control, [data], fds)
        else:
            self.control.send(data)

    def _read_replies(self) -> None:
        try:
            while True:
                data = self.control.recv(MAX_MESSAGE)
                if not data:
                    break
                try:
                    reply = json.loads(data)
                except ValueError:
                    log.error("fork server sent a malformed reply; closing it")
                    break
                self._dispatch(reply)
        except OSError:
            pass
        finally:
            self._closed.set()
            with self._lock:
                boxes = list(self._boxes.values())
            for box in boxes:
                box._server_gone()

    def _dispatch(self, reply: dict) -> None:
        name = str(reply.get("forked") or reply.get("exited") or reply.get("error") or "")
        with self._lock:
            box = self._boxes.get(name)
        if box is None:
            return
        if "forked" in reply:
            box._adopt(reply.get("pid"))
        elif "exited" in reply:
            box._exited(reply.get("status"))
        else:
            log.error("fork server refused box %s: %s", name, reply.get("message"))
            box._server_gone()

    # -- what the backend asks of it

    def alive(self) -> bool:
        return not self._closed.is_set() and self.box.proc.poll() is None

    def busy(self) -> bool:
        with self._lock:
            return bool(self._boxes)

    def pids(self) -> list[int]:
        return self.box.cgroup.pids()

    def memory_bytes(self) -> int | None:
        return self.box.memory_bytes()

    def fork(self, mounts: list[Mount], limits: Limits, *, cuda: bool) -> ForkedBox:
        if not self.alive():
            raise SandboxUnavailable("the fork server is gone")
        self.last_used = time.monotonic()
        return ForkedBox(self, mounts, limits, cuda=cuda)

    def _register(self, box: ForkedBox) -> None:
        with self._lock:
            self._boxes[box.name] = box

    def _forget(self, box: ForkedBox) -> None:
        with self._lock:
            self._boxes.pop(box.name, None)

    def close(self) -> None:
        """End the server and every box forked from it (they die with its PID namespace)."""
        self._closed.set()
        try:
            self.control.close()
        except OSError:
            pass
        try:
            self.box.kill()
        finally:
            self.staging.close()


class ForkedBox(RunningSandbox):
    """One box forked from a server: its own mounts under the spool, its cgroup, its stdin, stdout and stderr."""

    def __init__(self, server: ForkServer, mounts: list[Mount], limits: Limits, *, cuda: bool):
        self.server = server
        self.limits = limits
        self.name = uuid.uuid4().hex
        self.pid: int | None = None  # the server's child, as the host sees it, once adopted
        self._lock = threading.Lock()
        self._finished: Outcome | None = None
        self._exit_code: int | None = None
        self._ended = threading.Event()
        self._adopted = threading.Event()
        self._outputs: list[tuple[Path, Path]] = []
        self.started = time.monotonic()
        sandbox = server.sandbox
        user = sandbox.user
        self.staging = Staging(sandbox.staging_root, user)
        self.cgroup: Cgroup | None = None
        self.folder = server.spool / self.name
        stdin_r = stdin_w = out_r = out_w = err_r = err_w = -1
        try:
            self.folder.mkdir(mode=0o710)
            os.chown(self.folder, 0, user.gid)
            request_mounts = []
            for index, mount in enumerate(mounts):
                target = self.folder / f"m{index}"
                if mount.writable:
                    area = self.staging.tmpfs_at(target, size_bytes=limits.output_bytes, inodes=limits.output_files)
                    self._outputs.append((area, mount.source))
                else:
                    self.staging.bind_into(self.staging.bind_readonly(mount.source), target)
                request_mounts.append([target.name, mount.target, mount.writable])
            self.cgroup = Cgroup.create(limits, root=sandbox.cgroup_root, parent=sandbox.cgroup_parent)
            self.cgroup.set_cpu_weight("low")
            stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            server._register(self)
            request = {"op": "fork", "id": self.name, "mounts": request_mounts, "tmp_bytes": limits.tmp_bytes}
            server._send({**request, "cuda": bool(cuda)}, [stdin_r, out_w, err_w])
        except BaseException:
            server._forget(self)
            for fd in (stdin_r, stdin_w, out_r, out_w, err_r, err_w):
                if fd >= 0:
                    os.close(fd)
            self._release()
            raise
        for fd in (stdin_r, out_w, err_w):
            os.close(fd)
        self._stdin = os.fdopen(stdin_w, "wb", buffering=0)
        self.stdout = OutputTail(out_r, limit=sandbox.tail_bytes, ready_marker=b"ready")
        self.stderr = OutputTail(err_r, limit=sandbox.tail_bytes)

    # -- called from the server's reply thread

    def _adopt(self, server_pid) -> None:
        """Move the server's new child into this box's cgroup, then let it go on (it waits for that)."""
        try:
            if not isinstance(server_pid, int):
                raise SandboxError("the fork server named no child")
            child = [pid for pid in self.server.pids() if _ns_pids(pid)[1:2] == [server_pid]]
            if len(child) != 1:
                raise SandboxError(f"the fork server's child {server_pid} is not in its cgroup")
            self.cgroup.enter(child[0])
            self.pid = child[0]
            self.server._send({"op": "go", "id": self.name})
            self._adopted.set()
        except (OSError, SandboxError) as exc:
            log.error("cannot adopt the forked box %s: %s", self.name, exc)
            self._server_gone()

    def _exited(self, status) -> None:
        self._exit_code = status if isinstance(status, int) else None
        self._ended.set()

    def _server_gone(self) -> None:
        self._ended.set()

    # -- the RunningSandbox interface

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stdout.ready.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
                return True
            if self._ended.is_set():
                return self.stdout.ready.is_set()
        return self.stdout.ready.is_set()

    def memory_bytes(self) -> int | None:
        """What keeping this box ready holds: its own cgroup's charge and its server's (shared by its boxes)."""
        if self._finished is not None:
            return None
        own = self.cgroup.memory_bytes() or 0
        return own + (self.server.memory_bytes() or 0)

    def prioritise(self) -> None:
        with self._lock:
            if self._finished is None:
                self.cgroup.set_cpu_weight("normal")

    def submit(self, stdin_line: bytes) -> Outcome:
        if not stdin_line.endswith(b"\n"):
            stdin_line += b"\n"
        self.prioritise()
        with self._lock:
            if self._finished is not None:
                raise SandboxError("this sandbox has already run its job")
            # The job's line goes only to a box in its cgroup: wait (briefly) for the adoption.
            if not self._adopted.wait(REPLY_SECONDS):
                return self._conclude(timed_out=False)
            self.started = time.monotonic()
            self._cpu_at_start = self.cgroup.cpu_seconds()
            threading.Thread(target=self._feed, args=(stdin_line,), daemon=True).start()
            timed_out = not self._ended.wait(self.limits.wall_seconds)
            return self._conclude(timed_out=timed_out)

    def kill(self) -> Outcome:
        with self._lock:
            if self._finished is not None:
                return self._finished
            return self._conclude(timed_out=False)

    def _feed(self, data: bytes) -> None:
        try:
            self._stdin.write(data)
        except (BrokenPipeError, OSError, ValueError):
            pass
        finally:
            try:
                self._stdin.close()
            except OSError:
                pass

    def _conclude(self, *, timed_out: bool) -> Outcome:
        duration = time.monotonic() - self.started
        emptied = self.cgroup.kill_all()
        self._ended.wait(2.0)  # the server reports the killed child's status
        try:
            self._stdin.close()
        except OSError:
            pass
        self.stdout.join()
        self.stderr.join()
        oom = self.cgroup.oom_killed()
        cpu_end = self.cgroup.cpu_seconds()
        cpu_start = getattr(self, "_cpu_at_start", None)
        if not emptied:
            log.error("sandbox processes survived the kill; cgroup %s left in place", self.cgroup.dirs)
        try:
            collected = take_outputs(self._outputs, self.limits)
        finally:
            self.server._forget(self)
            self._release()
        self._finished = Outcome(
            exit_code=self._exit_code if not timed_out else None,
            timed_out=timed_out,
            oom_killed=oom,
            stdout_tail=self.stdout.text(),
            stderr_tail=self.stderr.text(),
            duration_s=duration,
            details={
                "backend": "bubblewrap",
                "forked": True,
                "cgroup_version": self.cgroup.version,
                "cgroup": [str(d) for d in self.cgroup.dirs.values()],
                "cpu_seconds": None if cpu_end is None else round(cpu_end - (cpu_start or 0.0), 3),
                "cpu_seconds_total": cpu_end,
                "output": collected,
            },
        )
        return self._finished

    def _release(self) -> None:
        if self.cgroup is not None:
            self.cgroup.kill_all()
            self.cgroup.remove()
        self.staging.close()
        try:
            self.folder.rmdir()
        except OSError:
            pass
