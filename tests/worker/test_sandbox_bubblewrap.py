"""The bubblewrap sandbox confines a real process: no network, no host files, no secrets, bounded resources."""

import hashlib
import json
import os
import socket
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from worker.sandbox import Limits, Mount, SandboxError, SandboxUnavailable, get_sandbox
from worker.sandbox.bubblewrap import BubblewrapSandbox

SMALL = Limits(wall_seconds=30, memory_bytes=512 * 1024**2, pids=64, file_size_bytes=8 * 1024**2)


@pytest.fixture(scope="module")
def sandbox():
    return get_sandbox("bubblewrap")


@pytest.fixture
def job(tmp_path):
    """A job folder as the worker lays it out, beside another student's submission that must stay invisible."""
    root = tmp_path / "jobs"
    for name in ("submission", "data", "out"):
        (root / "mine" / name).mkdir(parents=True)
    (root / "mine" / "submission" / "model.safetensors").write_bytes(b"weights of mine")
    (root / "mine" / "data" / "manifest.json").write_text('{"format": 1}')
    (root / "theirs" / "submission").mkdir(parents=True)
    (root / "theirs" / "submission" / "model.safetensors").write_bytes(b"weights of another student")
    return root


def mounts_for(job):
    return [
        Mount(job / "mine" / "submission", "/job/submission"),
        Mount(job / "mine" / "data", "/job/data"),
        Mount(job / "mine" / "out", "/job/out", writable=True),
    ]


def py(code: str) -> list[str]:
    return ["python", "-c", textwrap.dedent(code)]


def tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        digest.update(str(p.relative_to(path)).encode())
        if p.is_file():
            digest.update(p.read_bytes())
    return digest.hexdigest()


def test_trivial_python_run_succeeds_and_its_stdout_is_captured(sandbox, job):
    outcome = sandbox.run(py("import sys; print('hello', 6 * 7); print('warn', file=sys.stderr)"), [], SMALL)

    assert outcome.exit_code == 0
    assert outcome.stdout_tail == "hello 42\n"
    assert outcome.stderr_tail == "warn\n"
    assert not outcome.timed_out and not outcome.oom_killed


def test_stdin_reaches_the_command(sandbox):
    outcome = sandbox.run(py("import sys; print(sys.stdin.read().upper())"), [], SMALL, stdin=b"job line")

    assert outcome.stdout_tail == "JOB LINE\n"


def test_network_is_unreachable_from_inside(sandbox):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass  # the host itself can reach the listener
    code = f"""
        import json, socket
        results = {{}}
        for host, port in [("127.0.0.1", {port}), ("127.0.0.1", 6379), ("1.1.1.1", 443), ("8.8.8.8", 53)]:
            try:
                socket.create_connection((host, port), timeout=3).close()
                results[f"{{host}}:{{port}}"] = "connected"
            except OSError as exc:
                results[f"{{host}}:{{port}}"] = type(exc).__name__
        print(json.dumps(results))
    """
    try:
        outcome = sandbox.run(py(code), [], SMALL)
    finally:
        listener.close()

    results = json.loads(outcome.stdout_tail)
    assert set(results) == {f"127.0.0.1:{port}", "127.0.0.1:6379", "1.1.1.1:443", "8.8.8.8:53"}
    assert "connected" not in results.values()


def test_writes_outside_the_output_folder_fail_and_no_host_file_changes(sandbox, job):
    grader_dir = sandbox.grader_dir
    before_submission = tree_digest(job / "mine")
    before_grader = tree_digest(grader_dir)
    host_tmp_target = job / "planted-by-sandbox"
    home = Path.home() / f"planted-{uuid.uuid4().hex}"
    targets = [
        "/job/submission/model.safetensors",
        "/job/submission/new.txt",
        "/job/data/manifest.json",
        "/opt/grader/grader/__init__.py",
        "/opt/grader/grader/evil.py",
        str(host_tmp_target),
        str(home),
        sys.executable,
        "/etc/ld.so.cache",
        "/usr/evil",
        "/evil",
    ]
    code = f"""
        import json
        results = {{}}
        for target in {targets!r}:
            try:
                with open(target, "ab") as fh:
                    fh.write(b"tampered")
                results[target] = "written"
            except OSError as exc:
                results[target] = exc.strerror
        print(json.dumps(results))
    """
    outcome = sandbox.run(py(code), mounts_for(job), SMALL)

    results = json.loads(outcome.stdout_tail)
    assert sorted(results) == sorted(targets)
    assert "written" not in results.values(), results
    assert tree_digest(job / "mine") == before_submission
    assert tree_digest(grader_dir) == before_grader
    assert not host_tmp_target.exists()
    assert not home.exists()


def test_the_output_folder_is_writable_and_the_host_sees_the_file(sandbox, job):
    code = "open('/job/out/result.json', 'w').write('{\"schema\": 1}')"
    outcome = sandbox.run(py(code), mounts_for(job), SMALL)

    assert outcome.exit_code == 0
    assert (job / "mine" / "out" / "result.json").read_text() == '{"schema": 1}'


def test_submission_and_dataset_are_readable_inside(sandbox, job):
    code = (
        "print(open('/job/submission/model.safetensors','rb').read().decode(), open('/job/data/manifest.json').read())"
    )
    outcome = sandbox.run(py(code), mounts_for(job), SMALL)

    assert outcome.stdout_tail == 'weights of mine {"format": 1}\n'


def test_another_students_submission_cannot_be_read(sandbox, job):
    other = job / "theirs" / "submission" / "model.safetensors"
    code = f"""
        import os
        for path in [{str(other)!r}, "/job/../theirs/submission/model.safetensors"]:
            try:
                open(path, "rb").read()
                print("read", path)
            except OSError as exc:
                print(type(exc).__name__)
        print(sorted(os.listdir("/job")))
    """
    outcome = sandbox.run(py(code), mounts_for(job), SMALL)

    assert outcome.stdout_tail == "FileNotFoundError\nFileNotFoundError\n['data', 'out', 'submission']\n"


def test_host_environment_secrets_are_not_visible(sandbox, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "host-secret-value-123")
    monkeypatch.setenv("DATABASE_URL", "postgres://user:pw@db/x")
    code = "import os, json; print(json.dumps(dict(os.environ)))"
    outcome = sandbox.run(py(code), [], SMALL)

    env = json.loads(outcome.stdout_tail)
    assert "SECRET_KEY" not in env and "DATABASE_URL" not in env
    assert "host-secret-value-123" not in outcome.stdout_tail
    assert env["HOME"] == "/tmp"
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONPATH"] == "/opt/grader"


PROC_DUMP = """
    import glob, json
    seen = {}
    for proc in glob.glob("/proc/[0-9]*"):
        for name in ("environ", "cmdline"):
            try:
                seen[f"{proc}/{name}"] = open(f"{proc}/{name}", "rb").read().decode("utf-8", "replace")
            except OSError as exc:
                seen[f"{proc}/{name}"] = f"unreadable: {exc}"
    print(json.dumps(seen))
"""


def test_no_process_in_the_box_init_included_sees_the_workers_environment_or_settings(sandbox, monkeypatch, job):
    canary = f"canary-{uuid.uuid4().hex}"
    monkeypatch.setenv("SECRET_KEY", canary)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", canary)
    outcome = sandbox.run(py(PROC_DUMP), mounts_for(job), SMALL)

    seen = json.loads(outcome.stdout_tail)
    assert "/proc/1/environ" in seen and "/proc/1/cmdline" in seen, "bwrap's init is visible as PID 1"
    assert not any(text.startswith("unreadable") for text in seen.values())
    assert all(canary not in text for text in seen.values())
    # No host path of the job reaches a command line: bwrap's options came through a file descriptor.
    assert all(str(job) not in text for text in seen.values())
    assert "--args" in seen["/proc/1/cmdline"]


def test_files_written_in_the_box_belong_to_the_sandbox_user_and_come_out_as_plain_worker_files(sandbox, job):
    from worker.sandbox.account import sandbox_user

    code = """
        import os, stat
        open('/job/out/tool', 'w').write('#!/bin/sh')
        os.chmod('/job/out/tool', 0o4755)
        st = os.stat('/job/out/tool')
        print(bool(st.st_mode & stat.S_ISUID))
    """
    outcome = sandbox.run(py(code), mounts_for(job), SMALL)

    assert outcome.exit_code == 0, outcome.stderr_tail
    assert outcome.stdout_tail == "True\n", "inside, the box could set the bit on its own file"
    report = outcome.details["output"][str(job / "mine" / "out")]
    assert report["files"] == ["tool"]
    assert report["owners"] == [sandbox_user().uid] != [0], "on the host the box's files were never root's"
    copied = (job / "mine" / "out" / "tool").stat()
    assert copied.st_uid == os.getuid() and not copied.st_mode & 0o7000


def test_every_mount_in_the_box_is_nosuid_and_nodev(sandbox, job):
    code = """
        for line in open('/proc/self/mountinfo'):
            fields = line.split()
            print(fields[4], fields[5])
    """
    outcome = sandbox.run(py(code), mounts_for(job), SMALL)

    mounts = dict(line.split() for line in outcome.stdout_tail.splitlines())
    for target in ("/job/submission", "/job/data", "/job/out", "/opt/grader/grader", "/tmp", "/usr"):
        options = mounts[target].split(",")
        assert "nosuid" in options and "nodev" in options, (target, options)
    assert "ro" in mounts["/job/submission"].split(",") and "rw" in mounts["/job/out"].split(",")


def test_the_seccomp_filter_refuses_namespaces_ptrace_and_keyrings_while_python_runs(sandbox):
    code = """
        import ctypes, errno
        libc = ctypes.CDLL(None, use_errno=True)
        results = {}
        for name, call in [
            ("unshare", lambda: libc.unshare(0x00020000)),
            ("ptrace", lambda: libc.ptrace(16, 1, 0, 0)),
            ("keyctl", lambda: libc.syscall(250, 0, 0, 0, 0)),
            ("bpf", lambda: libc.syscall(321, 0, 0, 0)),
            ("mount", lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)),
        ]:
            ctypes.set_errno(0)
            rc = call()
            results[name] = errno.errorcode.get(ctypes.get_errno(), "ok") if rc != 0 else "ok"
        print(open('/proc/self/status').read().split('Seccomp:')[1].split()[0], sorted(results.items()))
    """
    outcome = sandbox.run(py(code), [], SMALL)

    assert outcome.exit_code == 0, outcome.stderr_tail
    mode, refused = outcome.stdout_tail.split(" ", 1)
    assert mode == "2", "a seccomp filter is installed"
    assert refused.strip() == str(
        [("bpf", "EPERM"), ("keyctl", "EPERM"), ("mount", "EPERM"), ("ptrace", "EPERM"), ("unshare", "EPERM")]
    )


def test_the_output_is_a_tmpfs_bounded_in_bytes_and_in_files(sandbox, job):
    code = """
        import os
        try:
            with open('/job/out/fill', 'wb') as fh:
                for _ in range(64):
                    fh.write(b'x' * 1024 * 1024)
        except OSError as exc:
            print('bytes stopped', exc.errno)
        os.remove('/job/out/fill')
        made = 0
        try:
            for i in range(100_000):
                open(f'/job/out/f{i}', 'w').close()
                made += 1
        except OSError as exc:
            print('files stopped', exc.errno, made < 1000)
    """
    limits = Limits(wall_seconds=60, memory_bytes=512 * 1024**2, pids=32, output_bytes=4 * 1024**2, output_files=500)
    outcome = sandbox.run(py(code), mounts_for(job), limits)

    assert outcome.stdout_tail == "bytes stopped 28\nfiles stopped 28 True\n"  # ENOSPC both times
    copied = list((job / "mine" / "out").iterdir())
    assert 0 < len(copied) <= 64, "at most the cap of files is copied out"


def test_the_process_runs_as_an_unprivileged_user_without_capabilities(sandbox):
    code = """
        import os
        caps = [l.split()[1] for l in open('/proc/self/status') if l.startswith(('CapEff', 'CapPrm'))]
        print(os.getuid(), os.geteuid(), os.getgid(), caps)
    """
    outcome = sandbox.run(py(code), [], SMALL)

    assert outcome.stdout_tail == "65534 65534 65534 ['0000000000000000', '0000000000000000']\n"


def test_the_grader_package_is_importable_inside(sandbox):
    outcome = sandbox.run(py("import grader; print(grader.__file__, grader.GRADER_VERSION)"), [], SMALL)

    import grader

    assert outcome.stdout_tail == f"/opt/grader/grader/__init__.py {grader.GRADER_VERSION}\n"


def test_a_fork_bomb_is_stopped_by_the_pids_limit_and_the_host_survives(sandbox):
    code = """
        import os, time
        children = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                children += 1
        except OSError as exc:
            print("blocked after", children, exc.errno)
    """
    limits = Limits(wall_seconds=30, memory_bytes=512 * 1024**2, pids=24)
    outcome = sandbox.run(py(code), [], limits)

    words = outcome.stdout_tail.split()
    assert words[:2] == ["blocked", "after"]
    assert int(words[2]) < 24
    assert words[3] == "11"  # EAGAIN: the cgroup refused the fork
    assert not outcome.timed_out
    assert all(not Path(d).exists() for d in outcome.details["cgroup"])
    assert sandbox.run(py("print('still fine')"), [], SMALL).stdout_tail == "still fine\n"


def test_a_memory_hog_is_killed_and_reported_as_out_of_memory(sandbox):
    code = "blocks = []\nwhile True: blocks.append(b'x' * (32 * 1024 * 1024))"
    limits = Limits(wall_seconds=30, memory_bytes=192 * 1024**2, pids=32)
    outcome = sandbox.run(py(code), [], limits)

    assert outcome.oom_killed is True
    assert outcome.exit_code != 0
    assert outcome.timed_out is False


def test_a_process_that_never_ends_is_killed_at_the_wall_clock_with_nothing_left(sandbox):
    marker = f"sleeper-{uuid.uuid4().hex}"
    code = f"""
        import os, subprocess, time
        subprocess.Popen(["sleep", "1000"], start_new_session=True)
        if os.fork() == 0:
            os.setsid()
            time.sleep(1000)
        time.sleep(1000)  # {marker}
    """
    limits = Limits(wall_seconds=1.5, memory_bytes=256 * 1024**2, pids=32)
    started = time.monotonic()
    outcome = sandbox.run(py(code), [], limits)
    elapsed = time.monotonic() - started

    assert outcome.timed_out is True
    assert 1.4 < outcome.duration_s < 4
    assert elapsed < 6
    assert all(not Path(d).exists() for d in outcome.details["cgroup"])
    leftovers = []
    for proc in Path("/proc").iterdir():
        try:
            if marker.encode() in (proc / "cmdline").read_bytes():
                leftovers.append(proc.name)
        except OSError:
            continue
    assert leftovers == []


def test_a_file_size_bomb_is_stopped_at_the_file_size_limit(sandbox, job):
    code = """
        try:
            with open('/job/out/big.bin', 'wb') as fh:
                for _ in range(64):
                    fh.write(b'\\0' * 1024 * 1024)
            print('wrote everything')
        except OSError as exc:
            print('stopped', exc.errno)
    """
    limits = Limits(wall_seconds=30, memory_bytes=256 * 1024**2, pids=32, file_size_bytes=2 * 1024**2)
    outcome = sandbox.run(py(code), mounts_for(job), limits)

    assert outcome.stdout_tail == "stopped 27\n"  # EFBIG
    assert (job / "mine" / "out" / "big.bin").stat().st_size == 2 * 1024**2


def test_tmp_is_a_small_private_tmpfs(sandbox):
    code = """
        try:
            open('/tmp/fill', 'wb').write(b'x' * (8 * 1024 * 1024))
            print('filled')
        except OSError as exc:
            print('full', exc.errno)
    """
    limits = Limits(wall_seconds=30, memory_bytes=256 * 1024**2, pids=32, tmp_bytes=4 * 1024**2)
    outcome = sandbox.run(py(code), [], limits)

    assert outcome.stdout_tail == "full 28\n"  # ENOSPC


def test_output_tails_are_bounded_to_the_last_64_kib(sandbox):
    code = "import sys\nfor i in range(100000): print('line', i)\nsys.stdout.write('\\xff end')"
    outcome = sandbox.run(py(code), [], SMALL)

    assert len(outcome.stdout_tail.encode()) <= 64 * 1024 + 8
    assert outcome.stdout_tail.endswith("line 99999\n\xff end")
    assert "line 0\n" not in outcome.stdout_tail


def test_warm_start_runs_the_job_submitted_after_ready_quickly(sandbox, job):
    code = """
        import json, sys
        import grader  # the imports happen before the job arrives
        print('ready', flush=True)
        job = json.loads(sys.stdin.readline())
        open(job['out'] + '/result.json', 'w').write(json.dumps({'echo': job['seed']}))
        print('done', job['seed'])
    """
    box = sandbox.start(py(code), mounts_for(job), SMALL)
    try:
        assert box.wait_ready(20) is True
        # The artifact arrives only now; the bind mount shows it inside.
        (job / "mine" / "submission" / "late.safetensors").write_bytes(b"late")
        started = time.monotonic()
        outcome = box.submit(json.dumps({"out": "/job/out", "seed": 7}).encode())
        latency = time.monotonic() - started
    finally:
        box.kill()

    assert outcome.exit_code == 0
    assert outcome.stdout_tail == "done 7\n"
    assert json.loads((job / "mine" / "out" / "result.json").read_text()) == {"echo": 7}
    assert latency < 0.5
    assert outcome.duration_s < 0.5


def test_warm_start_wall_clock_counts_from_submission(sandbox):
    code = "import sys, time\nprint('ready', flush=True)\nsys.stdin.readline()\ntime.sleep(1000)"
    box = sandbox.start(py(code), [], Limits(wall_seconds=1, memory_bytes=256 * 1024**2, pids=16))
    assert box.wait_ready(20) is True
    time.sleep(1.2)  # idle time before the job does not count
    outcome = box.submit(b"{}")

    assert outcome.timed_out is True
    assert 0.9 < outcome.duration_s < 3
    with pytest.raises(SandboxError):
        box.submit(b"{}")


def test_a_warm_sandbox_that_dies_before_ready_is_reported_not_ready(sandbox):
    box = sandbox.start(py("import sys; print('boom', file=sys.stderr); sys.exit(2)"), [], SMALL)

    assert box.wait_ready(20) is False
    outcome = box.kill()
    assert outcome.exit_code == 2
    assert outcome.stderr_tail == "boom\n"


def test_probe_proves_the_backend_works(sandbox):
    sandbox.probe()


def test_without_cgroups_the_sandbox_is_unavailable_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    box = BubblewrapSandbox(cgroup_root=tmp_path / "no-cgroups")

    with pytest.raises(SandboxUnavailable):
        box.probe()
    with pytest.raises(SandboxUnavailable):
        box.run(["sh", "-c", f"touch {marker}"], [], SMALL)
    assert not marker.exists()


def test_a_missing_bubblewrap_binary_makes_the_sandbox_unavailable():
    with pytest.raises(SandboxUnavailable):
        get_sandbox("bubblewrap", bwrap="/nonexistent/bwrap")


def test_unknown_backend_is_refused():
    with pytest.raises(SandboxUnavailable):
        get_sandbox("chroot")


def test_mounting_a_socket_or_over_the_runtime_is_refused(sandbox, job, tmp_path):
    sock_path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    try:
        with pytest.raises(SandboxError):
            sandbox.run(py("print(1)"), [Mount(sock_path, "/var/run/docker.sock")], SMALL)
    finally:
        server.close()
    for target in ("/usr/lib/x", "/tmp", "relative", "/job/../etc", "/opt/grader"):
        with pytest.raises(SandboxError):
            sandbox.run(py("print(1)"), [Mount(job / "mine" / "out", target)], SMALL)


def test_the_output_written_inside_is_owned_by_no_secret_path_and_job_folders_stay_private(sandbox, job):
    """Nothing of the host's home or the repository beyond the grader package is mounted."""
    repo = Path(__file__).resolve().parents[2]
    code = f"""
        import os
        for path in [{str(repo / "pyproject.toml")!r}, {str(repo / "worker")!r}, "/root/.ssh", "/etc/passwd",
                     "/etc/hostname", "/var/run"]:
            print(path, os.path.exists(path))
    """
    outcome = sandbox.run(py(code), mounts_for(job), SMALL)

    assert [line.rsplit(" ", 1)[1] for line in outcome.stdout_tail.splitlines()] == ["False"] * 6
    assert os.path.exists(repo / "pyproject.toml")


def test_a_runtime_that_lives_under_tmp_on_the_host_is_still_visible_inside(tmp_path):
    """A checkout under /tmp (its virtualenv there too) must not be hidden by the box's private /tmp."""
    import sys

    from worker.sandbox.bubblewrap import BubblewrapSandbox

    runtime = tmp_path / "runtime-under-tmp"
    runtime.mkdir()
    (runtime / "marker.txt").write_text("seen")
    assert str(runtime).startswith("/tmp/")
    box = BubblewrapSandbox(python_roots=[sys.prefix, sys.base_prefix, str(runtime)])
    outcome = box.run(
        ["python", "-c", f"print(open({str(runtime / 'marker.txt')!r}).read())"],
        [],
        Limits(wall_seconds=60, memory_bytes=512 * 1024**2, pids=32, tmp_bytes=16 * 1024**2),
    )
    assert outcome.exit_code == 0, outcome.stderr_tail
    assert outcome.stdout_tail.strip() == "seen"
