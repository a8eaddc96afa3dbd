"""The Docker sandbox confines a real container on a real Engine: no network, no secrets, bounded everything."""

import errno
import json
import platform
import socket
import stat
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from tests.canary import plant_canaries
from tests.docker_engine import GRADER_PARENT, SECCOMP_PROFILE, docker_engine  # noqa: F401
from worker.sandbox import Limits, Mount, SandboxError, SandboxUnavailable, get_sandbox
from worker.sandbox.account import sandbox_user
from worker.sandbox.seccomp import docker_profile_json

SMALL = Limits(wall_seconds=30, memory_bytes=512 * 1024**2, pids=64, file_size_bytes=8 * 1024**2)


@pytest.fixture(scope="module")
def sandbox(docker_engine):  # noqa: F811
    return docker_engine.sandbox()


@pytest.fixture
def job(tmp_path):
    """A job folder as the worker lays it out: the submission and the data read-only, an empty output folder."""
    root = tmp_path / "job"
    for name in ("submission", "data", "out"):
        (root / name).mkdir(parents=True)
    (root / "submission" / "model.safetensors").write_bytes(b"weights of mine")
    (root / "data" / "manifest.json").write_text('{"format": 1}')
    return root


def mounts_for(job):
    return [
        Mount(job / "submission", "/job/submission"),
        Mount(job / "data", "/job/data"),
        Mount(job / "out", "/job/out", writable=True),
    ]


def py(code: str) -> list[str]:
    return ["python", "-c", textwrap.dedent(code)]


def run_json(sandbox, code: str, mounts=(), limits=SMALL):
    outcome = sandbox.run(py(code), list(mounts), limits)
    assert outcome.exit_code == 0, outcome.stderr_tail
    return json.loads(outcome.stdout_tail), outcome


def test_a_trivial_run_prints_exits_zero_and_leaves_no_container(sandbox, docker_engine):  # noqa: F811
    outcome = sandbox.run(py("import sys; print('hello'); print('warning', file=sys.stderr)"), [], SMALL)

    assert (outcome.exit_code, outcome.timed_out, outcome.oom_killed) == (0, False, False)
    assert outcome.stdout_tail == "hello\n"
    assert outcome.stderr_tail == "warning\n"
    assert outcome.details["backend"] == "docker" and outcome.details["removed"] is True
    assert docker_engine.sandbox_containers() == []


def test_stdin_reaches_the_command_and_then_ends(sandbox):
    code = "import sys; data = sys.stdin.read(); print(len(data), data[:5])"
    outcome = sandbox.run(py(code), [], SMALL, stdin=b"hello" + b"x" * 200_000)

    assert outcome.exit_code == 0, outcome.stderr_tail
    assert outcome.stdout_tail == "200005 hello\n"


def test_the_container_is_created_with_every_confinement_flag(sandbox, docker_engine, job):  # noqa: F811
    limits = Limits(wall_seconds=30, memory_bytes=300 * 1024**2, pids=40, nofile=200, cpus=1.5, tmp_bytes=8 * 1024**2)
    box = sandbox.start(py("import sys; print('ready', flush=True); sys.stdin.readline()"), mounts_for(job), limits)
    try:
        assert box.wait_ready(20) is True
        (container,) = docker_engine.sandbox_containers()
        config = docker_engine.client.api.inspect_container(container.id)
    finally:
        box.kill()
    host = config["HostConfig"]
    user = sandbox_user()

    assert config["Config"]["User"] == f"{user.uid}:{user.gid}" and user.uid != 0
    assert config["Config"]["Entrypoint"] == [sandbox.python]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["Privileged"] is False
    assert host["SecurityOpt"][0] == "no-new-privileges"
    assert json.loads(host["SecurityOpt"][1].removeprefix("seccomp=")) == json.loads(SECCOMP_PROFILE.read_text())
    assert host["PidsLimit"] == 40
    assert host["Memory"] == 300 * 1024**2 and host["MemorySwap"] == host["Memory"]
    assert host["NanoCpus"] == 1_500_000_000
    assert host["Tmpfs"] == {"/tmp": "size=8388608,noexec,nosuid,nodev"}
    assert sorted((u["Name"], u["Soft"], u["Hard"]) for u in host["Ulimits"]) == [
        ("core", 0, 0),
        ("fsize", limits.file_size_bytes, limits.file_size_bytes),
        ("nofile", 200, 200),
    ]
    assert host["LogConfig"]["Type"] == "none"
    binds = {m["Destination"]: m for m in config["Mounts"]}
    assert binds["/job/submission"]["RW"] is False and binds["/job/data"]["RW"] is False
    assert binds["/job/out"]["RW"] is True
    assert binds["/job/out"]["Source"] != str(job / "out")  # the box writes a tmpfs, never the host folder
    assert all(m["RW"] is False for target, m in binds.items() if target != "/job/out")
    assert not any("docker.sock" in m["Source"] or "docker.sock" in target for target, m in binds.items())
    assert docker_engine.sandbox_containers() == []


def test_the_network_is_unreachable_from_inside(sandbox):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    code = f"""
        import json, os, socket
        results = {{"interfaces": sorted(os.listdir("/sys/class/net"))}}
        for host, port in [("127.0.0.1", {port}), ("1.1.1.1", 443), ("8.8.8.8", 53)]:
            try:
                socket.create_connection((host, port), timeout=3).close()
                results[host] = "connected"
            except OSError as exc:
                results[host] = type(exc).__name__
        print(json.dumps(results))
    """
    try:
        results, _ = run_json(sandbox, code)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever reached the host's listener
    finally:
        listener.close()

    assert results["interfaces"] == ["lo"]
    assert results["127.0.0.1"] == "ConnectionRefusedError"  # the box's own loopback, not the host's
    assert "connected" not in results.values()


def test_no_secret_of_the_host_or_the_image_reaches_any_process_in_the_box(sandbox, monkeypatch):
    canaries = plant_canaries(monkeypatch)
    code = """
        import json, os, subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        seen = {}
        for pid in sorted(p for p in os.listdir("/proc") if p.isdigit()):
            try:
                seen[pid] = [open(f"/proc/{pid}/{name}", "rb").read().decode(errors="replace")
                             for name in ("environ", "cmdline")]
            except OSError:
                pass
        child.kill()
        print(json.dumps({"env": dict(os.environ), "procs": seen}))
    """
    report, _ = run_json(sandbox, code)

    assert len(report["procs"]) >= 2  # the command (PID 1) and its child
    text = json.dumps(report)
    for name, value in canaries.items():
        assert name not in report["env"]
        assert value not in text
    assert "planted-in-the-image" not in text
    expected = sandbox.environment(SMALL, image_env=sandbox.image_config()[1])
    assert {k: v for k, v in report["env"].items() if k != "HOSTNAME"} == expected
    assert report["env"]["IMAGE_SECRET"] == "" and report["env"]["LD_PRELOAD"] == ""
    assert report["env"]["PYTHONPATH"] == GRADER_PARENT and report["env"]["HOME"] == "/tmp"


def test_the_box_runs_as_the_sandbox_user_and_its_files_come_out_as_the_workers(sandbox, job):
    code = """
        import json, os
        path = "/job/out/tool"
        with open(path, "w") as handle:
            handle.write("#!/bin/sh\\n")
        os.chmod(path, 0o4755)
        status = dict(line.split(":\\t", 1) for line in open("/proc/self/status"))
        print(json.dumps({
            "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid()],
            "caps": [status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")],
            "no_new_privs": status["NoNewPrivs"].strip(), "seccomp": status["Seccomp"].strip(),
            "mode": oct(os.stat(path).st_mode),
        }))
    """
    report, outcome = run_json(sandbox, code, mounts_for(job))
    user = sandbox_user()

    assert report["ids"] == [user.uid, user.uid, user.gid, user.gid]
    assert report["caps"] == ["0000000000000000"] * 5
    assert report["no_new_privs"] == "1" and report["seccomp"] == "2"
    assert report["mode"] == "0o104755"  # the box may set the bit on its own tmpfs ...
    copied = (job / "out" / "tool").stat()
    assert (copied.st_uid, copied.st_gid) == (0, 0)  # ... the worker's copy is its own file, 0640
    assert stat.S_IMODE(copied.st_mode) == 0o640
    report = outcome.details["output"][str(job / "out")]
    assert (report["files"], report["refused"], report["bytes"]) == (["tool"], {}, 10)
    assert report["owners"] == [user.uid], "on the host the box's files were the sandbox user's, never root's"


def test_the_root_is_read_only_and_tmp_is_a_small_noexec_tmpfs(sandbox, job):
    code = """
        import json, os, shutil, subprocess, sys
        results = {}
        for path in ["/planted", "/etc/planted", "/usr/planted", "/opt/grader/grader/planted",
                     sys.prefix + "/planted", "/job/submission/planted", "/job/data/manifest.json"]:
            try:
                open(path, "w").write("x")
                results[path] = "written"
            except OSError as exc:
                results[path] = exc.errno
        shutil.copy("/bin/true", "/tmp/true")
        os.chmod("/tmp/true", 0o755)
        try:
            subprocess.run(["/tmp/true"])
            results["exec /tmp"] = "ran"
        except OSError as exc:
            results["exec /tmp"] = exc.errno
        try:
            open("/tmp/big", "wb").write(b"x" * 6 * 1024 * 1024)
            results["fill /tmp"] = "written"
        except OSError as exc:
            results["fill /tmp"] = exc.errno
        print(json.dumps(results))
    """
    limits = Limits(wall_seconds=30, memory_bytes=256 * 1024**2, pids=32, tmp_bytes=4 * 1024**2)
    results, _ = run_json(sandbox, code, mounts_for(job), limits)

    assert results.pop("exec /tmp") == errno.EACCES
    assert results.pop("fill /tmp") == errno.ENOSPC
    assert set(results.values()) == {errno.EROFS}
    assert (job / "data" / "manifest.json").read_text() == '{"format": 1}'
    assert list((job / "submission").iterdir()) == [job / "submission" / "model.safetensors"]


def test_a_full_output_tmpfs_refuses_writes_while_the_box_runs(sandbox, job):
    code = """
        import json
        mounts = [line.split() for line in open("/proc/self/mountinfo")]
        fstype = next(m[m.index("-") + 1] for m in mounts if m[4] == "/job/out")
        try:
            with open("/job/out/big.bin", "wb") as handle:
                for _ in range(8):
                    handle.write(b"x" * 256 * 1024)
                    handle.flush()
            print(json.dumps({"fstype": fstype, "full": None}))
        except OSError as exc:
            print(json.dumps({"fstype": fstype, "full": exc.errno}))
    """
    limits = Limits(wall_seconds=30, memory_bytes=256 * 1024**2, pids=32, output_bytes=1024**2)
    report, outcome = run_json(sandbox, code, mounts_for(job), limits)

    assert report == {"fstype": "tmpfs", "full": errno.ENOSPC}
    assert (job / "out" / "big.bin").stat().st_size <= 1024**2


def test_too_many_output_files_stop_at_the_inode_limit(sandbox, job):
    code = """
        import json
        made = 0
        try:
            for i in range(1000):
                open(f"/job/out/f{i:04d}", "w").close()
                made += 1
            print(json.dumps([made, None]))
        except OSError as exc:
            print(json.dumps([made, exc.errno]))
    """
    limits = Limits(wall_seconds=30, memory_bytes=256 * 1024**2, pids=32, output_files=8)
    (made, error), outcome = run_json(sandbox, code, mounts_for(job), limits)

    assert error == errno.ENOSPC
    assert made < 8
    assert len(list((job / "out").iterdir())) == made


def test_links_and_fifos_in_the_output_are_not_copied(sandbox, job):
    code = """
        import os
        open("/job/out/result.json", "w").write('{"ok": 1}')
        os.symlink("/etc/ld.so.cache", "/job/out/link.json")
        os.mkfifo("/job/out/fifo.json")
        os.mkdir("/job/out/folder")
        print("done")
    """
    outcome = sandbox.run(py(code), mounts_for(job), SMALL)

    assert outcome.exit_code == 0, outcome.stderr_tail
    assert sorted(p.name for p in (job / "out").iterdir()) == ["result.json"]
    report = outcome.details["output"][str(job / "out")]
    assert report["files"] == ["result.json"]
    assert set(report["refused"]) == {"link.json", "fifo.json", "folder"}


def test_with_declared_output_names_only_those_files_come_out(sandbox, job):
    code = """
        for i in range(200):
            open(f"/job/out/junk{i:03d}", "w").close()
        open("/job/out/result.json", "w").write('{"ok": 1}')
    """
    limits = Limits(wall_seconds=30, memory_bytes=256 * 1024**2, pids=32, output_names=("result.json", "absent.json"))
    outcome = sandbox.run(py(code), mounts_for(job), limits)

    assert outcome.exit_code == 0, outcome.stderr_tail
    assert [p.name for p in (job / "out").iterdir()] == ["result.json"]
    report = outcome.details["output"][str(job / "out")]
    assert (report["files"], report["refused"]) == (["result.json"], {})


def test_a_memory_hog_is_killed_and_reported_as_out_of_memory(sandbox):
    code = "blocks = []\nwhile True: blocks.append(b'x' * (32 * 1024 * 1024))"
    outcome = sandbox.run(py(code), [], Limits(wall_seconds=30, memory_bytes=160 * 1024**2, pids=32))

    assert outcome.oom_killed is True
    assert outcome.exit_code == 137
    assert outcome.timed_out is False


def test_a_fork_bomb_is_stopped_by_the_pids_limit(sandbox):
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
    outcome = sandbox.run(py(code), [], Limits(wall_seconds=30, memory_bytes=512 * 1024**2, pids=24))

    words = outcome.stdout_tail.split()
    assert words[:2] == ["blocked", "after"] and int(words[2]) < 24
    assert words[3] == str(errno.EAGAIN)
    assert outcome.timed_out is False


def test_past_the_wall_clock_the_container_is_killed_and_removed(sandbox, docker_engine):  # noqa: F811
    marker = f"sleeper-{uuid.uuid4().hex}"
    code = f"""
        import os, subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)  # {marker}"], start_new_session=True)
        print("started", flush=True)
        time.sleep(1000)
    """
    started = time.monotonic()
    outcome = sandbox.run(py(code), [], Limits(wall_seconds=1, memory_bytes=256 * 1024**2, pids=32))

    assert outcome.timed_out is True
    assert outcome.stdout_tail == "started\n"
    assert 0.9 < outcome.duration_s < 2
    assert time.monotonic() - started < 6
    assert outcome.details["removed"] is True
    assert docker_engine.sandbox_containers() == []
    survivors = [p for p in Path("/proc").glob("[0-9]*/cmdline") if marker.encode() in _read(p)]
    assert survivors == []


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def test_the_cpu_quota_bounds_the_box_and_its_cpu_time_is_reported(sandbox):
    code = """
        import os, time
        end = time.monotonic() + 2.0
        pids = [os.fork() for _ in range(2)]
        while time.monotonic() < end:
            pass
        if 0 not in pids:
            for pid in pids:
                os.waitpid(pid, 0)
    """
    outcome = sandbox.run(py(code), [], Limits(wall_seconds=30, memory_bytes=256 * 1024**2, pids=32, cpus=0.5))

    assert outcome.exit_code == 0, outcome.stderr_tail
    # Four busy processes for two seconds, held to half a CPU: about one CPU second (sampled once a second).
    assert 0.3 <= outcome.details["cpu_seconds"] <= 1.5


def test_output_tails_are_bounded_to_the_last_64_kib(sandbox):
    code = "import sys\nfor i in range(100000): print('line', i)\nsys.stdout.write('\\xff end')"
    outcome = sandbox.run(py(code), [], SMALL)

    assert len(outcome.stdout_tail.encode()) <= 64 * 1024 + 8
    assert outcome.stdout_tail.endswith("line 99999\n\xff end")
    assert "line 0\n" not in outcome.stdout_tail


def test_the_docker_socket_cannot_be_mounted(sandbox, docker_engine, job, tmp_path):  # noqa: F811
    sock_path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    try:
        for target in ("/var/run/docker.sock", "/job/engine"):
            with pytest.raises(SandboxError):
                sandbox.run(py("print(1)"), [Mount(sock_path, target)], SMALL)
        with pytest.raises(SandboxError):
            docker_engine.sandbox(runtime_mounts=[Mount(sock_path, "/run/docker.sock")])
    finally:
        server.close()
    for target in ("/usr/lib/x", "/tmp", "relative", "/job/../etc", GRADER_PARENT, "/proc"):
        with pytest.raises(SandboxError):
            sandbox.run(py("print(1)"), [Mount(job / "data", target)], SMALL)
    assert docker_engine.sandbox_containers() == []


def _syscall_numbers() -> dict[str, int]:
    return {
        "x86_64": {"keyctl": 250, "io_uring_setup": 425},
        "aarch64": {"keyctl": 219, "io_uring_setup": 425},
    }[platform.machine()]


SECCOMP_CHECK = """
    import ctypes, json
    libc = ctypes.CDLL(None, use_errno=True)
    def errno_of(result):
        return 0 if result == 0 else ctypes.get_errno()
    numbers = {numbers}
    print(json.dumps({{
        "unshare": errno_of(libc.unshare(0x10000000)),  # CLONE_NEWUSER
        "ptrace": errno_of(libc.ptrace(0, 0, None, None)),  # PTRACE_TRACEME
        "keyctl": errno_of(libc.syscall(numbers["keyctl"], 0, -3, 0)),  # the session keyring's id
        "io_uring_setup": errno_of(libc.syscall(numbers["io_uring_setup"], 1, None)),
    }}))
"""


def test_the_grader_seccomp_profile_refuses_namespaces_tracing_and_keyrings(sandbox, docker_engine):  # noqa: F811
    code = SECCOMP_CHECK.format(numbers=_syscall_numbers())
    refused, _ = run_json(sandbox, code)
    engine_default, _ = run_json(docker_engine.sandbox(seccomp_profile=None), code)

    assert refused == dict.fromkeys(("unshare", "ptrace", "keyctl", "io_uring_setup"), errno.EPERM)
    assert engine_default["ptrace"] == 0  # the Engine's default allows it: the grader profile is what refuses


def test_the_seccomp_profile_file_is_what_the_seccomp_module_generates():
    assert SECCOMP_PROFILE.read_text() == docker_profile_json()


def test_warm_start_runs_the_job_submitted_after_ready(sandbox, job):
    code = """
        import json, sys
        import grader  # the imports happen before the job arrives
        print('ready', flush=True)
        job = json.loads(sys.stdin.readline())
        open(job['out'] + '/result.json', 'w').write(json.dumps({'echo': job['seed'], 'grader': grader.__file__}))
        print('done', job['seed'])
    """
    box = sandbox.start(py(code), mounts_for(job), SMALL)
    try:
        assert box.wait_ready(20) is True
        (job / "submission" / "late.safetensors").write_bytes(b"late")  # the bind mount shows it inside
        started = time.monotonic()
        outcome = box.submit(json.dumps({"out": "/job/out", "seed": 7}).encode())
        latency = time.monotonic() - started
    finally:
        box.kill()

    assert outcome.exit_code == 0, outcome.stderr_tail
    assert outcome.stdout_tail == "done 7\n"
    result = json.loads((job / "out" / "result.json").read_text())
    assert result == {"echo": 7, "grader": f"{GRADER_PARENT}/grader/__init__.py"}
    assert outcome.duration_s < 1
    assert latency < 2


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


def test_a_warm_box_that_dies_before_ready_is_reported_not_ready(sandbox, docker_engine):  # noqa: F811
    box = sandbox.start(py("import sys; print('boom', file=sys.stderr); sys.exit(2)"), [], SMALL)

    assert box.wait_ready(20) is False
    outcome = box.kill()
    assert outcome.exit_code == 2
    assert outcome.stderr_tail == "boom\n"
    assert docker_engine.sandbox_containers() == []


def test_a_replacement_grader_package_is_the_one_the_box_imports(docker_engine, tmp_path):  # noqa: F811
    hostile = tmp_path / "hostile" / "grader"
    hostile.mkdir(parents=True)
    (hostile / "__init__.py").write_text("")
    (hostile / "__main__.py").write_text("import grader, sys; print('hostile grader', grader.__file__, sys.argv[1:])")
    box = docker_engine.sandbox(grader_dir=hostile)

    outcome = box.run(["python", "-m", "grader", "evaluate"], [], SMALL)

    assert outcome.exit_code == 0, outcome.stderr_tail
    assert outcome.stdout_tail == f"hostile grader {GRADER_PARENT}/grader/__init__.py ['evaluate']\n"


def test_probe_proves_the_backend_works(sandbox):
    sandbox.probe()


def test_a_missing_image_makes_the_sandbox_unavailable(docker_engine):  # noqa: F811
    box = docker_engine.sandbox(image="course-platform-grader:absent")

    with pytest.raises(SandboxUnavailable, match="not on this node"):
        box.run(py("print(1)"), [], SMALL)


def test_an_engine_that_does_not_answer_makes_the_sandbox_unavailable(tmp_path):
    box = get_sandbox("docker", base_url=f"unix://{tmp_path / 'absent.sock'}", api_timeout=2)

    with pytest.raises(SandboxUnavailable):
        box.probe()
    with pytest.raises(SandboxUnavailable):
        box.run(py("print(1)"), [], SMALL)


def test_a_workers_start_removes_the_containers_dead_workers_of_its_host_left_and_no_other(
    sandbox,
    docker_engine,  # noqa: F811
):
    import os
    import socket
    import subprocess

    from worker.sandbox.docker import OWNER_LABEL, SANDBOX_LABEL

    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid is no longer anyone's
    image = docker_engine.image
    owners = {
        "dead": f"{socket.gethostname()}:{dead.pid}",
        "alive": f"{socket.gethostname()}:{os.getpid()}",
        "elsewhere": f"another-node:{dead.pid}",
    }
    made = {
        who: docker_engine.client.containers.create(image, ["/x"], labels={SANDBOX_LABEL: "1", OWNER_LABEL: owner})
        for who, owner in owners.items()
    }
    try:
        assert sandbox.sweep_leftovers() == 1
        left = {c.id for c in docker_engine.sandbox_containers()}
        assert made["dead"].id not in left
        assert {made["alive"].id, made["elsewhere"].id} <= left
    finally:
        for container in made.values():
            try:
                container.remove(force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
