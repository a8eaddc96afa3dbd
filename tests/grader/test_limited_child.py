"""The helper for children that parse untrusted input: each test is an attack such a child could make, and fails."""

import json
import signal
import subprocess
import sys
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pytest

from grader.limited_child import ChildLimits, child_environment, run_limited
from tests.canary import assert_no_canary, parse_environ, plant_canaries

ROOT = Path(__file__).resolve().parents[2]
PROBE = "tests.grader.childprobe"
MIB = 1024 * 1024
LIMITS = ChildLimits(cpu_seconds=10, memory_bytes=256 * MIB, file_size_bytes=0, wall_seconds=10, output_bytes=MIB)


def probe(*args: str, cwd: Path | None = None, **limits):
    return run_limited(PROBE, list(args), limits=replace(LIMITS, **limits), cwd=cwd)


def live_members_of_group(pgid: int) -> list[int]:
    """Processes of the group that are not zombies (a killed descendant stays a zombie until init reaps it)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def test_the_child_sees_none_of_the_parents_secrets_only_an_environment_built_from_nothing(monkeypatch):
    canaries = plant_canaries(monkeypatch)
    done = probe("environ")
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    # The probe runs inside the entry process itself: /proc/self/environ is what the kernel handed it at exec.
    started = parse_environ("\0".join(seen["proc_self_environ"]).encode())
    assert_no_canary(started, canaries)
    assert_no_canary(seen["os_environ"], canaries)
    assert started == seen["os_environ"] == child_environment()
    assert started["PATH"] == "/usr/bin:/bin" and started["OMP_NUM_THREADS"] == "1"


def test_a_module_planted_in_the_childs_working_folder_is_not_imported(tmp_path):
    (tmp_path / "json.py").write_text("print('HIJACKED')\n")
    done = probe("environ", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert b"HIJACKED" not in done.stdout
    assert "proc_self_environ" in json.loads(done.stdout)


def test_the_entry_point_sets_every_limit_on_itself_before_the_module_runs():
    done = probe("limits", cpu_seconds=7, memory_bytes=300 * MIB, file_size_bytes=4096, open_files=50)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "RLIMIT_CPU": [7, 7],
        "RLIMIT_AS": [300 * MIB, 300 * MIB],
        "RLIMIT_FSIZE": [4096, 4096],
        "RLIMIT_NOFILE": [50, 50],
        "RLIMIT_CORE": [0, 0],
    }


def test_the_entry_point_refuses_to_run_a_module_when_a_limit_is_missing():
    command = [
        sys.executable,
        "-m",
        "grader.limited_child",
        "--cpu",
        "5",
        "--memory",
        "1000000",
        "--",
        PROBE,
        "environ",
    ]
    done = subprocess.run(command, capture_output=True, cwd=ROOT, timeout=30)
    assert done.returncode != 0
    assert done.stdout == b""
    assert b"usage: python -m grader.limited_child" in done.stderr


def test_a_child_that_spins_forever_is_killed_at_the_wall_clock_with_everything_in_its_group():
    started = time.monotonic()
    done = probe("spin", wall_seconds=1.0, cpu_seconds=30)
    assert time.monotonic() - started < 5
    assert done.timed_out is True
    assert done.returncode == -signal.SIGKILL
    pids = json.loads(done.stdout)
    assert pids["pid"] != pids["descendant"]
    for _ in range(100):  # SIGKILL is delivered at once, but the descendant's exit is not instantaneous
        if not live_members_of_group(pids["pid"]):
            break
        time.sleep(0.02)
    assert live_members_of_group(pids["pid"]) == []


def test_a_child_that_burns_past_its_cpu_limit_is_killed_before_the_wall_clock():
    started = time.monotonic()
    done = probe("burn", cpu_seconds=1, wall_seconds=20)
    assert time.monotonic() - started < 10
    assert done.timed_out is False
    assert done.returncode in (-signal.SIGKILL, -signal.SIGXCPU)


def test_a_child_that_allocates_past_its_memory_cap_fails_and_one_within_it_does_not():
    within = probe("allocate", str(16 * MIB), memory_bytes=256 * MIB)
    assert (within.returncode, within.stdout) == (0, f"{16 * MIB}\n".encode())
    past = probe("allocate", str(1024 * MIB), memory_bytes=256 * MIB)
    assert past.returncode == 1
    assert past.stdout == b""
    assert b"MemoryError" in past.stderr


def test_a_child_that_prints_200_mb_returns_only_the_cap_and_the_parent_does_not_hold_it():
    tracemalloc.start()
    try:
        done = probe("flood", str(200 * MIB), str(20 * MIB), output_bytes=MIB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert done.returncode == 0, done.stderr[-500:]
    assert (len(done.stdout), len(done.stderr)) == (MIB, MIB)
    assert set(done.stdout) == {ord("o")} and set(done.stderr) == {ord("e")}
    assert done.stdout_truncated and done.stderr_truncated and done.truncated
    assert peak < 8 * MIB


def test_a_child_cannot_write_a_single_byte_to_a_file_under_a_zero_file_size_limit(tmp_path):
    target = tmp_path / "written"
    done = probe("write", str(target), file_size_bytes=0)
    assert done.returncode == 1
    assert b"File too large" in done.stderr
    assert target.stat().st_size == 0
    allowed = probe("write", str(target), file_size_bytes=1024)
    assert allowed.returncode == 0, allowed.stderr
    assert target.read_bytes() == b"x"


@pytest.mark.parametrize(
    "bad",
    [
        {"cpu_seconds": 0},
        {"memory_bytes": -1},
        {"file_size_bytes": -1},
        {"open_files": 0},
        {"wall_seconds": 0},
        {"output_bytes": 0},
    ],
)
def test_limits_that_would_mean_unlimited_or_nothing_are_refused(bad):
    with pytest.raises(ValueError):
        replace(LIMITS, **bad)


def test_a_child_cannot_connect_to_a_listening_port_nor_send_it_a_byte():
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(2)
        done = probe("connect", str(server.getsockname()[1]))
        reply = json.loads(done.stdout.decode().strip().splitlines()[-1])
        assert reply == {"connected": False, "error": "no network in a limited child"}
        with pytest.raises(TimeoutError):
            server.accept()
