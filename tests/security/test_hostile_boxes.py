"""Hostile programs in place of the grader's entry point, run through the worker's own grading path.

Each program is what code in the box could do if it were not the grader: read every process's environment and
command line, plant links, FIFOs, huge and countless files and setuid binaries in the output, fork-bomb, spin
every core, fill its disks, connect out, open the platform's files. Each must end in one clean final state with a
message that leaks nothing, the worker alive, CPU within the quota, and nothing outside the output folder changed.
The same suite runs on bubblewrap (a box started from nothing, and a box forked from a warm server) and on a
real Docker Engine.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import threading
import time
import uuid
from pathlib import Path

import pytest

import grader
from grader.errors import EXIT_REJECTED
from labs.models import Evaluation
from tests.factories import save_lstm, submit_folder
from tests.security.conftest import REPO, snapshot, stored_root
from worker import grading
from worker.sandbox.account import sandbox_user

CPUS = 1.0
WALL = 4

PRELUDE = """
import json, os, sys
print("ready", flush=True)
JOB = json.loads(sys.stdin.readline())
OUT = JOB["out"]
LOOT = []


def reject(message, *, exit_code=__EXIT_REJECTED__):
    result = {
        "schema": 1, "lab": "music", "grader_version": "1.0.0",
        "dataset": {"name": "hostile", "hash": __DATASET_HASH__},
        "device_class": "cpu", "seed": 0, "status": "rejected",
        "error": {"code": "hostile", "message": message[:1900]},
        "metrics": {}, "primary": None, "tiebreak": None, "groups": None, "samples": [], "details": {},
        "artifact": {}, "timings": {"check_s": None, "evaluate_s": None, "total_s": None},
    }
    try:
        with open(os.path.join(OUT, "result.json"), "w") as fh:
            json.dump(result, fh)
    except OSError as exc:
        print("could not write the result:", exc, file=sys.stderr)
    print("\\n".join(str(x) for x in LOOT)[-20000:], file=sys.stderr)
    sys.exit(exit_code)
"""

ATTACKS = {
    # Every process the box can see, bwrap's or the container's init included.
    "read_proc": """
import glob
for proc in glob.glob("/proc/[0-9]*"):
    for name in ("environ", "cmdline"):
        try:
            LOOT.append(open(f"{proc}/{name}", "rb").read().replace(b"\\0", b" ").decode("utf-8", "replace"))
        except OSError as exc:
            LOOT.append(f"{proc}/{name}: {exc}")
reject(" | ".join(LOOT))
""",
    "symlink_to_dev_zero": """
os.symlink("/dev/zero", os.path.join(OUT, "result.json"))
os.symlink("/dev/zero", os.path.join(OUT, "judge_answers.json"))
""",
    "symlink_to_host_file": """
os.symlink(__HOST_JSON__, os.path.join(OUT, "result.json"))
""",
    "fifo": """
os.mkfifo(os.path.join(OUT, "result.json"))
os.mkfifo(os.path.join(OUT, "judge_answers.json"))
""",
    "sparse_10gb": """
try:
    with open(os.path.join(OUT, "huge.bin"), "wb") as fh:
        fh.truncate(10 * 1024**3)
except OSError as exc:
    LOOT.append(f"truncate: {exc}")
reject("sparse " + "; ".join(map(str, LOOT)))
""",
    "many_files": """
made = 0
try:
    for i in range(100_000):
        open(os.path.join(OUT, f"f{i:06d}"), "w").close()
        made += 1
except OSError as exc:
    LOOT.append(f"after {made}: {exc}")
os.remove(os.path.join(OUT, "f000000"))  # room for the result
reject(f"made {made} files")
""",
    "setuid_binary": """
import shutil, stat
target = os.path.join(OUT, "rootshell")
shutil.copy("/bin/sh", target)
os.chmod(target, 0o6755)
LOOT.append(oct(os.stat(target).st_mode))
reject("setuid " + LOOT[-1])
""",
    "fork_bomb": """
import time
children = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        children += 1
except OSError as exc:
    LOOT.append(f"fork refused after {children}: {exc}")
reject("fork bomb " + LOOT[-1])
""",
    "spin_every_core": """
for _ in range(max(2, os.cpu_count() or 2) * 2):
    if os.fork() == 0:
        while True:
            pass
while True:
    pass
""",
    "fill_disks": """
for where in (OUT, "/tmp"):
    try:
        with open(os.path.join(where, "fill"), "wb") as fh:
            while True:
                fh.write(b"x" * (1 << 20))
    except OSError as exc:
        LOOT.append(f"{where}: {exc.errno}")
    try:
        os.remove(os.path.join(where, "fill"))
    except OSError:
        pass
reject("filled " + " ".join(LOOT))
""",
    "connect_out": """
import socket
for family, address in ((socket.AF_INET, ("127.0.0.1", __PORT__)), (socket.AF_UNIX, __ABSTRACT__)):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(address)
        s.sendall(b"escaped")
        LOOT.append(f"connected to {address!r}")
    except OSError as exc:
        LOOT.append(f"{family}: {exc.errno}")
    finally:
        s.close()
reject("network " + " ".join(LOOT))
""",
    "open_platform_files": """
# Only what was found is reported, never the path it was asked for (those name the worker's own folders).
for i, path in enumerate(__PATHS__):
    try:
        if os.path.isdir(path):
            LOOT.append(f"{i}: {os.listdir(path)}")
        else:
            LOOT.append(f"{i}: {open(path, 'rb').read(200)!r}")
    except OSError as exc:
        LOOT.append(f"{i}: {exc.strerror}")
reject("files " + " | ".join(LOOT))
""",
}


@pytest.fixture
def canary(monkeypatch):
    value = f"canary{uuid.uuid4().hex}"
    for name in ("SECRET_KEY", "AWS_SECRET_ACCESS_KEY", "DATABASE_URL", "CELERY_BROKER_URL"):
        monkeypatch.setenv(name, f"{name.lower()}-{value}")
    return value


@pytest.fixture
def platform_files(tmp_path, canary):
    """What the platform keeps on the node: a secret key file, a database file, another job's folder."""
    var = tmp_path / "var"
    var.mkdir()
    (var / "secret_key").write_text(f"secret-{canary}")
    (var / "db.sqlite3").write_bytes(b"SQLite format 3\0" + canary.encode())
    host_json = var / "settings.json"
    host_json.write_text(json.dumps({f"key_{canary}": "value"}))
    return var


@pytest.fixture
def cache_dir(settings, tmp_path, canary):
    # A backend setting with the canary in it: the node cache's own path.
    settings.WORKER_CACHE_DIR = tmp_path / f"cache-{canary}"
    settings.EVALUATION_MAX_ATTEMPTS = 1
    settings.SANDBOX_PREWARM = False
    settings.SANDBOX_CPUS = CPUS
    return settings.WORKER_CACHE_DIR


def hostile_grader(folder: Path, program: str) -> Path:
    package = folder / "grader"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(program)
    for path in (folder, package, package / "__init__.py", package / "__main__.py"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return package


# A forked box runs the hostile program where the grader's evaluation would run: after the real fork server has
# built the box (the server is the real grader.forkbox; only the job step is the program).
FORKED_SERVE = """
import os, sys


def warm_up(args):
    return None


def serve_job(args, *, verified, cuda):
    exec(compile(open(os.path.join(os.path.dirname(__file__), "hostile.py")).read(), "hostile", "exec"),
         {"__name__": "__main__"})
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
"""


@pytest.fixture(params=["bubblewrap", "bubblewrap-forked", "docker"])
def backend(request):
    return request.param


@pytest.fixture
def make_box(backend, request, tmp_path, canary):
    """A sandbox of the backend under test whose grader package is the hostile program."""

    def build(program: str):
        if backend == "bubblewrap-forked":
            package = tmp_path / "hostile" / "grader"
            shutil.copytree(Path(grader.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
            (package / "serve.py").write_text(FORKED_SERVE)
            (package / "hostile.py").write_text(program)
            for path in [package.parent, *package.parent.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
        else:
            package = hostile_grader(tmp_path / "hostile", program)
        if backend.startswith("bubblewrap"):
            from worker.sandbox.bubblewrap import BubblewrapSandbox

            return BubblewrapSandbox(
                grader_dir=package,
                cgroup_parent=f"grader-sandbox-{canary[:20]}",
                staging_root="/run/grader-sandbox",
                fork_servers=1 if backend == "bubblewrap-forked" else 0,
            )
        docker_sandbox_for = request.getfixturevalue("docker_sandbox_for")
        return docker_sandbox_for(grader_dir=package)

    return build


@pytest.fixture
def listeners():
    """A TCP listener on the host's loopback and an abstract unix socket: neither may see a connection."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    abstract_name = f"\0course-platform-{uuid.uuid4().hex}"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(abstract_name)
    unix.listen(8)
    seen: list[str] = []

    def watch(sock, label):
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                seen.append(label)
                conn.close()
            except OSError:
                continue

    stop = threading.Event()
    threads = [threading.Thread(target=watch, args=(s, n), daemon=True) for s, n in ((tcp, "tcp"), (unix, "unix"))]
    for t in threads:
        t.start()
    yield {"port": tcp.getsockname()[1], "abstract": abstract_name, "seen": seen}
    stop.set()
    for t in threads:
        t.join(2)
    tcp.close()
    unix.close()


def box_processes(backend: str, *, besides: set[int] = frozenset()) -> list[int]:
    """Live processes of the sandbox user on the host (of this backend), after a moment for the exiting ones;
    ``besides``: those that are meant to stay (a fork server's)."""
    uid = sandbox_user().uid
    for _ in range(20):
        found = []
        for proc in Path("/proc").iterdir():
            try:
                if not proc.name.isdigit() or proc.stat().st_uid != uid or int(proc.name) in besides:
                    continue
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
                in_docker = "docker" in (proc / "cgroup").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if state != "Z" and in_docker == (backend == "docker"):
                found.append(int(proc.name))
        if not found:
            return []
        time.sleep(0.1)
    return found


def grade_with(box, evaluation: Evaluation, monkeypatch):
    """The worker's own path (grade -> claim -> sandbox -> classify_outcome -> conclude), with the outcome kept."""
    seen = {}
    real = grading.run_in_sandbox

    def keep(running, lab, heartbeat, *rest):
        seen["outcome"] = real(running, lab, heartbeat, *rest)
        return seen["outcome"]

    monkeypatch.setattr(grading, "_sandbox", box)
    monkeypatch.setattr(grading, "run_in_sandbox", keep)
    status = grading.grade(evaluation.pk)
    evaluation.refresh_from_db()
    return status, evaluation, seen.get("outcome")


# A rejection under a code the grader does not declare is not the grader speaking: the result is refused, and its
# words go to the staff's log only.
EXPECTED = {
    "read_proc": ("error", "bad_result"),
    # What is not a regular file is never taken out of the box, so the worker finds no result at all.
    "symlink_to_dev_zero": ("error", "no_result"),
    "symlink_to_host_file": ("error", "no_result"),
    "fifo": ("error", "no_result"),
    "sparse_10gb": ("error", "bad_result"),
    "many_files": ("error", "bad_result"),
    "setuid_binary": ("error", "bad_result"),
    "fork_bomb": ("error", "bad_result"),
    "spin_every_core": ("error", "timeout"),
    "fill_disks": ("error", "bad_result"),
    "connect_out": ("error", "bad_result"),
    "open_platform_files": ("error", "bad_result"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_hostile_program_in_the_box_reaches_nothing_of_the_platform(
    attack,
    backend,
    make_box,
    graded_lab,
    student,
    student2,
    tmp_path,
    cache_dir,
    music_data_dir,
    canary,
    platform_files,
    listeners,
    monkeypatch,
    settings,
):
    graded_lab.time_limit_s = WALL
    graded_lab.save(update_fields=["time_limit_s"])
    other = submit_folder(lab=graded_lab, member=student2, directory=save_lstm(tmp_path / "theirs", seed=3))
    other_job = Path(cache_dir) / "jobs" / "another-job"
    (other_job / "submission").mkdir(parents=True)
    (other_job / "submission" / "model.safetensors").write_bytes(canary.encode())
    submission = submit_folder(lab=graded_lab, member=student, directory=save_lstm(tmp_path / "mine"))
    values = {
        "__EXIT_REJECTED__": repr(EXIT_REJECTED),
        "__DATASET_HASH__": repr(graded_lab.dataset.manifest_hash),
        "__HOST_JSON__": repr(str(platform_files / "settings.json")),
        "__PORT__": repr(listeners["port"]),
        "__ABSTRACT__": repr(listeners["abstract"]),
        "__PATHS__": repr(
            [
                str(platform_files / "secret_key"),
                str(platform_files / "db.sqlite3"),
                str(other_job),
                str(stored_root(other)),
                str(settings.MEDIA_ROOT),
                "/proc/1/root/etc/shadow",
                "/var/run/docker.sock",
                "/run/docker.sock",
            ]
        ),
    }
    program = PRELUDE + ATTACKS[attack]
    for token, value in values.items():
        program = program.replace(token, value)
    box = make_box(program)
    watched = [REPO / "grader", music_data_dir, Path(settings.MEDIA_ROOT), platform_files, other_job]
    before = snapshot(*watched)
    started = time.monotonic()

    status, evaluation, outcome = grade_with(box, submission.evaluations.get(), monkeypatch)

    elapsed = time.monotonic() - started
    expected_status, expected_code = EXPECTED[attack]
    assert (status, evaluation.status, evaluation.error_code) == (expected_status, expected_status, expected_code), (
        evaluation.error_message,
        evaluation.staff_log[-3000:],
    )
    assert evaluation.finished_at is not None and evaluation.lease_expires_at is None
    shown = " ".join(
        [evaluation.error_message, evaluation.log_tail, evaluation.staff_log, json.dumps(evaluation.details)]
    )
    assert canary not in shown, "nothing of the worker's environment, settings or files reached the box"
    assert "secret-" not in shown and "SQLite format" not in shown
    assert evaluation.public_score is None and evaluation.private_score is None
    assert elapsed < WALL + 30, "neither a FIFO nor a flood blocked the worker"
    assert listeners["seen"] == [], "no connection left the box"
    servers = set()
    if backend == "bubblewrap-forked":
        assert outcome is not None and outcome.details.get("forked"), "the program ran in a forked box"
        (server,) = box._servers.values()
        assert server.alive(), "the box reached nothing of the server it was forked from"
        servers = set(server.pids())
    assert box_processes(backend.split("-")[0], besides=servers) == [], "nothing of the box survives it"
    box.close()
    assert box_processes(backend.split("-")[0]) == [], "nor of its server, once the sandbox closes"
    assert snapshot(*watched) == before, "nothing outside the output folder changed"
    assert not any(Path(cache_dir, "jobs").glob("*/out")), "the job's folder (and what the box left) is gone"
    leftovers = [p for p in Path("/run/grader-sandbox").glob(f"{os.getpid()}-*")]
    assert leftovers == [], "every staging mount is detached"
    for path in Path(cache_dir).rglob("*"):
        info = path.lstat()
        assert not info.st_mode & (stat.S_ISUID | stat.S_ISGID) or path.is_dir(), path
        assert info.st_uid != sandbox_user().uid, f"{path} belongs to the box's user on the host"
    if attack == "spin_every_core":
        assert outcome.details.get("cpu_seconds") is not None, "the CPU the box used was measured"
    if outcome is not None and outcome.details.get("cpu_seconds") is not None:
        # The Engine's stats are sampled about once a second, at the job's start and end: a second of resolution.
        resolution = 1.5 if backend == "docker" else 0.5
        assert outcome.details["cpu_seconds"] <= CPUS * outcome.duration_s * 1.1 + resolution, outcome.details
    if attack == "read_proc":
        # The attack did read the environments and command lines (the box's own, built from nothing).
        entry = "fork-server" if backend == "bubblewrap-forked" else "serve-one"
        assert "PYTHONPATH=/opt/grader" in evaluation.staff_log and entry in evaluation.staff_log
        assert "PYTHONPATH" not in evaluation.error_message + evaluation.log_tail
    if attack == "many_files":
        assert "made 255 files" in evaluation.staff_log or "made 254 files" in evaluation.staff_log
        report = next(iter(outcome.details["output"].values()))
        assert report["files"] == ["result.json"], "only what the worker reads is taken out; the rest is deleted"
    if attack in ("symlink_to_dev_zero", "symlink_to_host_file", "fifo"):
        assert "result.json" in evaluation.staff_log and "not taken" in evaluation.staff_log
    if attack == "connect_out":
        assert "connected" not in evaluation.staff_log
    if attack == "open_platform_files":
        assert "escaped" not in evaluation.staff_log
    if attack == "spin_every_core":
        assert outcome.timed_out


def test_the_worker_is_alive_and_grades_normally_after_the_hostile_suite(graded_lab, student, tmp_path, cache_dir):
    """The real grader still grades on this worker: the hostile runs left it (and its sandbox) sound."""
    grading._sandbox = None  # probed afresh, as a worker's next start would
    submission = submit_folder(lab=graded_lab, member=student, directory=save_lstm(tmp_path / "a"))
    assert grading.grade(submission.evaluations.get().pk) == "succeeded"
