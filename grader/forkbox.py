"""The fork server of a lab's boxes (`python -m grader fork-server`): warm up once, then fork one new box per job.

The server runs in a bubblewrap box of its own, started by the worker from an environment built from nothing. It
does the lab's imports and opens its dataset, and never reads a student's file: it only forks. Each request comes
over the control socket (inherited as a file descriptor) and names a folder under ``/jobs`` where the worker has
mounted that job's files; with it come the job's stdin, stdout and stderr as file descriptors. For each request:

1. the server forks a child, which waits until the worker has moved it into the job's own cgroup (the ``go``
   request), so that everything the job does is bounded by the job's limits from its first instruction;
2. the child enters new user, mount, PID, network, IPC, UTS and cgroup namespaces, and forks the box's init;
3. the init (PID 1 of the new PID namespace) mounts a fresh /proc, /tmp and /dev/shm, binds the job's files at
   their targets and covers /jobs, drops every capability, loads the strict seccomp filter (the worker's, the one
   every box gets) and then serves its one job exactly as ``serve-one`` does.

Nothing of one job reaches the next: each box has its own namespaces, writable mounts and cgroup; the server's
memory reaches the box only as copy-on-write pages, and the box cannot see, signal or trace the server (another
PID namespace, no capability, no ptrace). The child waits for the init and exits with its status (128 + the
signal when it was killed, as bwrap reports it); the server reports that status to the worker.

Requests and replies are JSON objects, one per message of a SOCK_SEQPACKET socket:
``{"op": "filter"}`` with the compiled filter as the message's one file descriptor (a memfd), once first;
``{"op": "fork", "id": ..., "mounts": [[name, target, writable], ...], "tmp_bytes": ..., "cuda": ...}`` with
three descriptors, answered ``{"forked": id, "pid": ...}`` (the child's PID in the server's namespace); ``{"op":
"go", "id": ...}``; and, unasked, ``{"exited": id, "status": ...}``.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import re
import selectors
import signal
import socket
import sys
import traceback

from grader.errors import EXIT_GRADER_FAULT
from grader.serve import serve_job, warm_up

JOBS = "/jobs"
SHM = "/dev/shm"  # noqa: S108 - a fresh tmpfs of the box's own
MAX_MESSAGE = 65536

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACES = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
LINUX_CAPABILITY_VERSION_3 = 0x20080522

_NAME = re.compile(r"^[0-9a-f]{8,64}$")
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class BoxSetupError(RuntimeError):
    pass


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise BoxSetupError(f"{what}: {os.strerror(err)} (errno {err})")


def _enc(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    result = _libc.mount(_enc(source), _enc(target), _enc(fstype), ctypes.c_ulong(flags), _enc(data))
    _check(result, f"mount {target}")


def _prctl(option: int, arg: int | ctypes._Pointer = 0) -> None:
    args = [arg if isinstance(arg, ctypes._Pointer) else ctypes.c_ulong(arg)]
    _check(_libc.prctl(ctypes.c_int(option), *args, ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)), "prctl")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def load_filter(bpf: bytes) -> None:
    """Load a compiled seccomp filter (classic BPF, 8 bytes an instruction) on this thread, no new privileges."""
    if not bpf or len(bpf) % 8:
        raise BoxSetupError("the seccomp filter is not a BPF program")
    buffer = ctypes.create_string_buffer(bpf, len(bpf))
    program = _SockFprog(len(bpf) // 8, ctypes.addressof(buffer))
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _check(
        _libc.prctl(
            ctypes.c_int(PR_SET_SECCOMP),
            ctypes.c_ulong(SECCOMP_MODE_FILTER),
            ctypes.byref(program),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
        ),
        "load the seccomp filter",
    )


def drop_capabilities() -> None:
    """Give up every capability the new user namespace granted: bounding set, ambient set, then all three sets."""
    try:
        last = int(open("/proc/sys/kernel/cap_last_cap").read())
    except (OSError, ValueError):
        last = 63
    for cap in range(last + 1):
        _prctl(PR_CAPBSET_DROP, cap)
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _checked_request(request: dict, targets: set[str]) -> tuple[str, list[tuple[str, str, bool]], int, bool]:
    """The fork request's job folder, mounts, /tmp size and CUDA flag, each checked (the worker is trusted, but a
    malformed request must fail the one box, not mount something unexpected)."""
    name = request.get("id")
    if not isinstance(name, str) or not _NAME.match(name):
        raise BoxSetupError("bad job id")
    mounts = []
    for item in request.get("mounts") or []:
        source, target, writable = item
        if not (isinstance(source, str) and re.fullmatch(r"m\d{1,3}", source)) or target not in targets:
            raise BoxSetupError(f"bad mount {item!r}")
        mounts.append((source, target, bool(writable)))
    tmp_bytes = request.get("tmp_bytes")
    if not isinstance(tmp_bytes, int) or tmp_bytes <= 0:
        raise BoxSetupError("bad tmp_bytes")
    return name, mounts, tmp_bytes, bool(request.get("cuda"))


# statvfs's flag bits, and the mount flag each stands for (a remount inside a user namespace must keep every flag
# the mount was locked with: nosuid, nodev, noexec and the access-time flags).
_KEPT_FLAGS = (
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)


def _remount_readonly(target: str) -> None:
    flags = os.statvfs(target).f_flag
    kept = sum(mount_flag for stat_flag, mount_flag in _KEPT_FLAGS if flags & stat_flag)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)


def _mount_points_below(path: str) -> list[str]:
    """The outermost mount points strictly below ``path`` in this namespace (/proc/self/mountinfo's fifth field,
    with its octal escapes of space, tab, newline and backslash undone)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        points = {
            re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            for line in handle
            if len(line.split()) > 4
        }
    below = sorted(p for p in points if p.startswith(path.rstrip("/") + "/"))
    return [p for p in below if not any(p.startswith(q + "/") for q in below if q != p)]


def _fresh_tmpfs(target: str, flags: int, data: str) -> None:
    """A new empty tmpfs at ``target`` that still shows what the server had mounted below it.

    A runtime that lives under /tmp on the host (a checkout there, its virtual environment with it) is bound into
    the server's /tmp at the same path; a plain tmpfs over /tmp would hide it from the box, and the box could no
    longer import the modules its server did not. So the new tmpfs is laid out on the spool (``JOBS``, covered
    afterwards), the server's mounts below ``target`` are bound into it again at their paths, as read-only as they
    were, and it is then moved over ``target``.
    """
    kept = _mount_points_below(target)
    if not kept:
        _mount("tmpfs", target, "tmpfs", flags, data)
        return
    _mount("tmpfs", JOBS, "tmpfs", flags, data)
    for point in kept:
        place = JOBS + point[len(target.rstrip("/")) :]
        if os.path.isdir(point):
            os.makedirs(place, mode=0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(place), mode=0o755, exist_ok=True)
            with open(place, "x"):
                pass
        _mount(point, place, None, MS_BIND | MS_REC)
        if os.statvfs(point).f_flag & os.ST_RDONLY:
            _remount_readonly(place)
    _mount(JOBS, target, None, MS_MOVE)


def _enter_box(name: str, mounts: list[tuple[str, str, bool]], tmp_bytes: int, bpf: bytes) -> None:
    """In the box's init (PID 1 of its namespace): its own mounts over the server's view, then no privilege."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setsid()
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    uid, gid = os.getuid(), os.getgid()
    own = f"uid={uid},gid={gid}"
    for source, target, writable in mounts:
        _mount(f"{JOBS}/{name}/{source}", target, None, MS_BIND)
        if not writable:
            _remount_readonly(target)
    _fresh_tmpfs("/tmp", MS_NOSUID | MS_NODEV, f"size={tmp_bytes},mode=0700,{own}")  # noqa: S108
    if os.path.isdir(SHM):  # the server's /dev is shared by its boxes: each gets its own shared-memory folder
        _fresh_tmpfs(SHM, MS_NOSUID | MS_NODEV | MS_NOEXEC, f"size={tmp_bytes},mode=0700,{own}")
    _remount_readonly("/dev")  # the server's /dev is its boxes' too: none may leave anything there
    _mount("tmpfs", JOBS, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,nr_inodes=1,mode=0")
    _check(_libc.sethostname(b"sandbox", 7), "sethostname")
    os.chdir("/tmp")  # noqa: S108 - the box's own /tmp
    drop_capabilities()
    load_filter(bpf)


def _child(request: dict, fds: list[int], gate: int, targets: set[str], bpf: bytes, args) -> None:
    """The forked child (never returns): wait for ``go``, new namespaces, then the box's init does the job."""
    status = 125
    try:
        os.read(gate, 1)  # the worker has moved this process into the job's cgroup (or the server is gone)
        os.close(gate)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        name, mounts, tmp_bytes, cuda = _checked_request(request, targets)
        uid, gid = os.getuid(), os.getgid()
        # Dumpable again (the server is not): a process's own /proc files, its id maps among them, are its user's
        # only then. Nothing else can reach it meanwhile: other boxes live in PID namespaces of their own.
        _prctl(PR_SET_DUMPABLE, 1)
        _check(_libc.unshare(ctypes.c_int(NAMESPACES)), "unshare")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
        _write("/proc/self/gid_map", f"{gid} {gid} 1\n")
        init = os.fork()
        if init == 0:
            try:
                stdin, stdout, stderr = fds
                os.dup2(stdin, 0)
                os.dup2(stdout, 1)
                os.dup2(stderr, 2)
                os.closerange(3, 65536)
                _enter_box(name, mounts, tmp_bytes, bpf)
            except BaseException as exc:  # noqa: BLE001 - reported on the box's stderr, then this box ends
                print(f"box setup failed: {exc}", file=sys.stderr, flush=True)
                os._exit(125)
            try:
                sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the job's own stdin
                serve_job(args, verified=args.verified, cuda=cuda)  # ends the process
            except BaseException:  # noqa: BLE001 - the job's stderr is the box's
                traceback.print_exc()
                sys.stderr.flush()
            os._exit(EXIT_GRADER_FAULT)
        for fd in fds:
            os.close(fd)
        _prctl(PR_SET_DUMPABLE, 0)
        load_filter(bpf)
        _, wait_status = os.waitpid(init, 0)
        if os.WIFSIGNALED(wait_status):
            status = 128 + os.WTERMSIG(wait_status)
        else:
            status = os.WEXITSTATUS(wait_status)
    except BaseException as exc:  # noqa: BLE001
        try:
            os.write(fds[2], f"box setup failed: {exc}\n".encode())
        except (OSError, IndexError):
            pass
    os._exit(status)


def serve_forks(args: argparse.Namespace) -> int:
    """Warm up, say ready, then fork one box per request until the worker closes the control socket."""
    args.verified = warm_up(args)  # never CUDA here: a CUDA context does not survive a fork
    control = socket.socket(fileno=args.control_fd)
    targets = set(args.job_target or [])
    _prctl(PR_SET_DUMPABLE, 0)  # no process of this user may read this one's memory or open its descriptors
    print("ready", flush=True)
    bpf = b""
    children: dict[int, str] = {}
    gates: dict[str, int] = {}
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)

    def reply(message: dict) -> None:
        control.send(json.dumps(message).encode())

    while True:
        for key, _ in selector.select():
            if key.fileobj is wake_r:
                while True:
                    try:
                        if not os.read(wake_r, 512):
                            break
                    except BlockingIOError:
                        break
                while children:
                    try:
                        pid, wait_status = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid == 0:
                        break
                    name = children.pop(pid, None)
                    if name is not None:
                        gate = gates.pop(name, None)
                        if gate is not None:
                            os.close(gate)
                        reply({"exited": name, "status": os.waitstatus_to_exitcode(wait_status)})
                continue
            try:
                message, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE, 4)
            except OSError:
                return 0
            if not message:
                return 0  # the worker is gone: so are this server and, with its PID namespace, every box
            try:
                request = json.loads(message)
                op = request.get("op")
            except (ValueError, AttributeError):
                request, op = {}, None
            if op == "filter" and len(fds) == 1:
                with os.fdopen(fds[0], "rb") as handle:
                    bpf = handle.read(1 << 20)
            elif op == "fork" and len(fds) == 3 and bpf:
                name = str(request.get("id"))
                gate_r, gate_w = os.pipe2(os.O_CLOEXEC)
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    os.close(gate_w)
                    os.close(wake_r)
                    os.close(wake_w)
                    control.close()
                    _child(request, fds, gate_r, targets, bpf, args)
                os.close(gate_r)
                for fd in fds:
                    os.close(fd)
                children[pid] = name
                gates[name] = gate_w
                reply({"forked": name, "pid": pid})
            elif op == "go":
                gate = gates.pop(str(request.get("id")), None)
                if gate is not None:
                    os.write(gate, b"g")
                    os.close(gate)
            else:
                for fd in fds:
                    os.close(fd)
                reply({"error": str(request.get("id")), "message": f"refused request {op!r}"})
