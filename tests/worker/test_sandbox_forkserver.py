"""Boxes forked from a warm fork server are boxes of their own: nothing of one job reaches the next or the server.

The server here is the real ``grader.forkbox`` (copied with the grader package); only what a forked box runs once
it is set up is replaced, by code the job line carries, so each test runs its probe or its attack in a real
forked box exactly where a grader's evaluation would run.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
import time
from pathlib import Path

import pytest

import grader
from worker.sandbox import ForkTemplate, Limits, Mount
from worker.sandbox.bubblewrap import STAGING_ROOT, BubblewrapSandbox
from worker.sandbox.forkserver import ForkedBox

LIMITS = Limits(wall_seconds=30, memory_bytes=512 * 1024**2, pids=64, file_size_bytes=8 * 1024**2, cpus=1)
TEMPLATE = ForkTemplate(("python", "-m", "grader", "fork-server", "--lab", "music", "--data", "/job/data"))
COMMAND = ["python", "-m", "grader", "serve-one", "--lab", "music", "--data", "/job/data"]

# What a forked box runs instead of an evaluation: the code of its job line, with ``JOB`` and ``OUT`` set.
PROBE_SERVE = """
import json, os, sys


def warm_up(args):
    return None


def serve_job(args, *, verified, cuda):
    print("ready", flush=True)
    job = json.loads(sys.stdin.readline())
    scope = {"JOB": job, "OUT": job["out"]}
    try:
        exec(compile(job["code"], "probe", "exec"), scope)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(0)
"""


@pytest.fixture(scope="module")
def probe_grader(tmp_path_factory) -> Path:
    """The grader package with its job step replaced by the probe (the fork server and namespaces are real)."""
    folder = tmp_path_factory.mktemp("probe-grader")
    package = folder / "grader"
    shutil.copytree(Path(grader.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "serve.py").write_text(PROBE_SERVE)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return package


@pytest.fixture
def sandbox(probe_grader):
    box = BubblewrapSandbox(grader_dir=probe_grader, fork_servers=2)
    yield box
    box.close()


@pytest.fixture
def job(tmp_path):
    root = tmp_path / "jobs"
    for name in ("data", "one/submission", "one/out", "two/submission", "two/out"):
        (root / name).mkdir(parents=True)
    (root / "data" / "manifest.json").write_text('{"format": 1}')
    (root / "one" / "submission" / "model.safetensors").write_bytes(b"weights of the first student")
    (root / "two" / "submission" / "model.safetensors").write_bytes(b"weights of the second student")
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def mounts(job: Path, which: str) -> list[Mount]:
    return [
        Mount(job / which / "submission", "/job/submission"),
        Mount(job / "data", "/job/data", shared=True),
        Mount(job / which / "out", "/job/out", writable=True),
    ]


def run(sandbox, job: Path, which: str, code: str, *, limits: Limits = LIMITS):
    box = sandbox.start(COMMAND, mounts(job, which), limits, template=TEMPLATE)
    assert isinstance(box, ForkedBox), "the box was forked from the server"
    assert box.wait_ready(120), box.kill().stderr_tail
    line = {"submission": "/job/submission", "data": "/job/data", "out": "/job/out", "code": textwrap.dedent(code)}
    return box.submit(json.dumps(line).encode())


def server_of(sandbox):
    (server,) = sandbox._servers.values()
    return server


def test_a_forked_box_runs_its_job_with_its_own_mounts_and_output(sandbox, job):
    outcome = run(
        sandbox,
        job,
        "one",
        """
        print(open('/job/submission/model.safetensors').read(), open('/job/data/manifest.json').read())
        open(OUT + '/result.json', 'w').write('{}')
        """,
    )

    assert outcome.exit_code == 0, outcome.stderr_tail
    assert outcome.stdout_tail == 'weights of the first student {"format": 1}\n'
    assert (job / "one" / "out" / "result.json").read_text() == "{}"
    assert outcome.details["forked"] is True


def test_the_box_is_unprivileged_filtered_and_alone_in_its_namespaces(sandbox, job):
    code = """
        import ctypes, errno, os, socket
        status = dict(l.split(':', 1) for l in open('/proc/self/status'))
        libc = ctypes.CDLL(None, use_errno=True)
        refused = {}
        for name, call in [
            ("unshare", lambda: libc.unshare(0x10000000)),
            ("mount", lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)),
            ("umount", lambda: libc.umount2(b"/jobs", 2)),
            ("ptrace", lambda: libc.ptrace(16, 1, 0, 0)),
        ]:
            ctypes.set_errno(0)
            rc = call()
            refused[name] = errno.errorcode.get(ctypes.get_errno(), "ok") if rc != 0 else "ok"
        pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
        try:
            spool = os.listdir('/jobs')
        except PermissionError:
            spool = "denied"
        try:
            socket.create_connection(("127.0.0.1", 1), timeout=1)
            net = "connected"
        except OSError as exc:
            net = type(exc).__name__
        print(json.dumps({
            "uid": [os.getuid(), os.getgid()],
            "caps": [status[k].strip() for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb")],
            "nnp": status["NoNewPrivs"].strip(), "seccomp": status["Seccomp"].strip(),
            "refused": refused, "pids": pids, "pid": os.getpid(), "jobs": spool,
            "hostname": socket.gethostname(), "net": net,
        }))
    """
    outcome = run(sandbox, job, "one", "import json\n" + textwrap.dedent(code))

    assert outcome.exit_code == 0, outcome.stderr_tail
    seen = json.loads(outcome.stdout_tail)
    assert seen["uid"] == [65534, 65534]
    assert seen["caps"] == ["0000000000000000"] * 4, "no capability left, none to regain"
    assert seen["nnp"] == "1" and seen["seccomp"] == "2"
    assert seen["refused"] == {"unshare": "EPERM", "mount": "EPERM", "umount": "EPERM", "ptrace": "EPERM"}
    assert seen["pid"] == 1 and seen["pids"] == [1], "a PID namespace of its own: the server is not there to see"
    assert seen["jobs"] in ([], "denied"), "the spool of every job is covered"
    assert seen["hostname"] == "sandbox" and seen["net"] != "connected"


def test_nothing_of_one_job_reaches_the_next_nor_the_server(sandbox, job):
    first = run(
        sandbox,
        job,
        "one",
        """
        import os, signal
        planted = []
        for folder in ('/tmp', '/dev/shm', '/dev', '/job/out', '/job/submission', '/job/data', '/jobs', '/'):
            try:
                open(os.path.join(folder, 'planted-by-one'), 'w').write('x')
                planted.append(folder)
            except OSError:
                pass
        killed = []
        for pid in range(1, 200):
            try:
                os.kill(pid, 0)
                killed.append(pid)
            except OSError:
                pass
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        """,
    )
    server = server_of(sandbox)
    assert server.alive(), "the first job's kill(-1) reached nothing outside its box"
    assert first.exit_code == 0, "the box's init is immune to its own kill(-1) and ran to its end"

    second = run(
        sandbox,
        job,
        "two",
        """
        import os
        found = []
        for folder in ('/tmp', '/dev/shm', '/dev', '/job/out', '/job/submission', '/job/data', '/jobs', '/'):
            if os.path.exists(os.path.join(folder, 'planted-by-one')):
                found.append(folder)
        print(found, open('/job/submission/model.safetensors').read())
        """,
    )

    assert second.exit_code == 0, second.stderr_tail
    assert second.stdout_tail == "[] weights of the second student\n"
    assert server_of(sandbox) is server, "one server served both boxes"
    assert (job / "one" / "out" / "planted-by-one").exists(), "the first box's output came out, to its own folder"
    assert not (job / "two" / "out" / "planted-by-one").exists()


def test_the_server_and_its_memory_are_out_of_the_boxs_reach(sandbox, job):
    warm = run(sandbox, job, "one", "pass")
    assert warm.exit_code == 0
    server = server_of(sandbox)
    # The server's PID as the host sees it, and as its own box does (bwrap's init is 1 there, the server 2).
    (server_pid,) = [p for p in server.pids() if "python" in open(f"/proc/{p}/cmdline").read().split("\0")[0]]
    code = f"""
        import os
        tried = {{}}
        for path in ('/proc/{server_pid}/mem', '/proc/{server_pid}/environ', '/proc/2/mem', '/proc/2/environ',
                     '/proc/1/environ'):
            try:
                with open(path, 'rb') as fh:
                    fh.read(16)
                tried[path] = 'read'
            except OSError as exc:
                tried[path] = type(exc).__name__
        print(sorted(tried.items()))
    """
    outcome = run(sandbox, job, "two", code)

    assert outcome.exit_code == 0, outcome.stderr_tail
    tried = dict(eval(outcome.stdout_tail))  # noqa: S307 - the test's own print of a list of pairs
    assert tried["/proc/1/environ"] == "read", "its own init's environment, the one built from nothing"
    for path, result in tried.items():
        if path != "/proc/1/environ":
            assert result != "read", (path, result)
    assert server.alive()


def test_each_box_has_its_own_cgroup_and_a_memory_hog_kills_only_its_box(sandbox, job):
    hog = run(
        sandbox,
        job,
        "one",
        "blocks = []\nwhile True:\n    blocks.append(bytearray(64 * 1024 * 1024))\n",
        limits=Limits(wall_seconds=30, memory_bytes=256 * 1024**2, pids=64, cpus=1),
    )
    assert hog.oom_killed and hog.exit_code != 0
    server = server_of(sandbox)
    assert server.alive(), "the server's own cgroup was not the one out of memory"
    after = run(sandbox, job, "two", "print('fine')")
    assert after.exit_code == 0 and after.stdout_tail == "fine\n"


def test_a_box_past_its_wall_clock_is_killed_with_everything_it_started(sandbox, job):
    started = time.monotonic()
    outcome = run(
        sandbox,
        job,
        "one",
        "import os, time\nfor _ in range(5):\n    os.fork()\ntime.sleep(60)\n",
        limits=Limits(wall_seconds=2, memory_bytes=256 * 1024**2, pids=64, cpus=1),
    )
    assert outcome.timed_out and outcome.exit_code is None
    assert time.monotonic() - started < 15
    server = server_of(sandbox)
    # The server's cgroup holds bwrap, the box's init and the server: no process of the job is left anywhere.
    assert len(server.pids()) == 3, [open(f"/proc/{p}/cmdline").read() for p in server.pids()]
    assert server.alive()


def test_a_server_that_dies_is_replaced_and_its_box_reports_a_platform_failure(sandbox, job):
    box = sandbox.start(COMMAND, mounts(job, "one"), LIMITS, template=TEMPLATE)
    assert box.wait_ready(120)
    server = server_of(sandbox)
    server.box.kill()
    line = {"submission": "/job/submission", "data": "/job/data", "out": "/job/out", "code": "print('late')"}
    outcome = box.submit(json.dumps(line).encode())
    assert outcome.exit_code != 0 and "late" not in outcome.stdout_tail

    again = run(sandbox, job, "two", "print('new server')")
    assert again.exit_code == 0 and again.stdout_tail == "new server\n"
    assert server_of(sandbox) is not server


def test_every_staging_mount_is_detached_once_the_sandbox_closes(probe_grader, job):
    def staged() -> tuple[set[Path], set[str]]:
        with open("/proc/self/mountinfo") as handle:
            mounted = {field for line in handle for field in line.split() if field.startswith(str(STAGING_ROOT))}
        return set(STAGING_ROOT.glob(f"{os.getpid()}-*")), mounted

    before = staged()
    sandbox = BubblewrapSandbox(grader_dir=probe_grader, fork_servers=1)
    assert run(sandbox, job, "one", "print('x')").exit_code == 0
    assert staged() != before  # the server's spool and the job's staging were there
    sandbox.close()
    assert staged() == before


def test_a_runtime_under_tmp_stays_importable_in_a_forked_box_whose_tmp_is_its_own(probe_grader, job, tmp_path):
    # A checkout under /tmp keeps its virtual environment there: the server binds it at that path inside its /tmp,
    # and each box's fresh /tmp must not hide it (a module the server never imported is imported by the job).
    runtime = tmp_path / "runtime"
    assert str(runtime).startswith("/tmp/")
    runtime.mkdir()
    (runtime / "late_module.py").write_text("VALUE = 'imported in the box'\n")
    for path in [runtime, *runtime.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    roots = [sys.prefix, sys.base_prefix, str(runtime)]
    sandbox = BubblewrapSandbox(grader_dir=probe_grader, fork_servers=1, python_roots=roots)
    code = f"""
        import errno, os, sys
        sys.path.insert(0, {str(runtime)!r})
        import late_module
        try:
            open({str(runtime)!r} + '/planted.py', 'w')
            print('written')
        except OSError as error:
            print(errno.errorcode[error.errno])
        open('/tmp/mine', 'w').write('x')
        print(late_module.VALUE, sorted(os.listdir('/tmp')))
        """
    try:
        first = run(sandbox, job, "one", code)
        second = run(sandbox, job, "two", code)
    finally:
        sandbox.close()
    # The box's /tmp holds its own file and the runtime's mounts below /tmp (this checkout's own environment too,
    # when the checkout lives there), nothing else.
    tops = {root.split("/")[2] for root in roots if root.startswith("/tmp/")}
    for outcome in (first, second):
        assert outcome.exit_code == 0, outcome.stderr_tail
        assert outcome.stdout_tail == f"EROFS\nimported in the box {sorted({'mine', *tops})}\n"
    assert not (runtime / "planted.py").exists()
