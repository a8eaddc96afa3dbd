"""The Docker sandbox asks the Engine for a fully confined container and handles exits, timeouts and OOM kills."""

import json
import socket
import time

import pytest

from tests.worker.docker_standin import DockerStandIn
from worker.sandbox import Limits, Mount, SandboxError, SandboxUnavailable, get_sandbox

LIMITS = Limits(
    wall_seconds=2,
    memory_bytes=3 * 1024**3,
    pids=128,
    file_size_bytes=64 * 1024**2,
    nofile=512,
    cpus=2.5,
    gpu=1,
    tmp_bytes=256 * 1024**2,
)


@pytest.fixture
def engine(tmp_path):
    with DockerStandIn(str(tmp_path / "engine.sock")) as standin:
        yield standin


@pytest.fixture
def sandbox(engine):
    return get_sandbox("docker", image="grader:test", base_url=engine.base_url, api_timeout=10)


@pytest.fixture
def job(tmp_path):
    for name in ("submission", "data", "out"):
        (tmp_path / "job" / name).mkdir(parents=True)
    return tmp_path / "job"


def mounts_for(job):
    return [
        Mount(job / "submission", "/job/submission"),
        Mount(job / "data", "/job/data"),
        Mount(job / "out", "/job/out", writable=True),
    ]


def test_the_container_is_created_with_every_confinement_flag(engine, sandbox, job, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "host-secret")
    outcome = sandbox.run(["python", "-m", "grader", "evaluate"], mounts_for(job), LIMITS)

    assert outcome.exit_code == 0
    assert len(engine.created) == 1
    request = engine.created[0]
    host = request["HostConfig"]
    assert request["Image"] == "grader:test"
    assert request["Cmd"] == ["python", "-m", "grader", "evaluate"]
    assert request["User"] == "65534:65534"
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == 128
    assert host["Memory"] == 3 * 1024**3
    assert host["MemorySwap"] == host["Memory"]
    assert host["NanoCpus"] == 2_500_000_000
    assert host["Tmpfs"] == {"/tmp": "size=268435456,noexec,nosuid,nodev"}
    assert host["DeviceRequests"] == [
        {"Driver": "", "Count": 0, "DeviceIDs": ["1"], "Capabilities": [["gpu"]], "Options": {}}
    ]
    assert sorted((u["Name"], u["Soft"], u["Hard"]) for u in host["Ulimits"]) == [
        ("core", 0, 0),
        ("fsize", 64 * 1024**2, 64 * 1024**2),
        ("nofile", 512, 512),
    ]
    assert sorted(host["Binds"]) == sorted(
        [
            f"{job / 'submission'}:/job/submission:ro",
            f"{job / 'data'}:/job/data:ro",
            f"{job / 'out'}:/job/out:rw",
        ]
    )
    assert not any("docker.sock" in b for b in host["Binds"])
    env = dict(item.split("=", 1) for item in request["Env"])
    assert "SECRET_KEY" not in env
    assert env["HF_HUB_OFFLINE"] == "1" and env["HOME"] == "/tmp"
    assert host.get("Privileged") in (None, False)


def test_a_normal_exit_returns_the_logs_and_removes_the_container(engine, sandbox, job):
    engine.stdout = b"metrics computed\n"
    engine.stderr = b"a warning\n"
    outcome = sandbox.run(["python", "-c", "pass"], mounts_for(job), LIMITS)

    assert outcome.exit_code == 0
    assert outcome.timed_out is False and outcome.oom_killed is False
    assert outcome.stdout_tail == "metrics computed\n"
    assert outcome.stderr_tail == "a warning\n"
    (container,) = engine.containers.values()
    assert container.removed is True
    assert engine.calls("POST", r"/start$") and engine.calls("DELETE", r"^/containers/[0-9a-f]+$")


def test_a_job_past_the_wall_clock_is_killed_and_removed(engine, sandbox, job):
    engine.scenario = "timeout"
    limits = Limits(wall_seconds=1, memory_bytes=1024**3, pids=64)
    started = time.monotonic()
    outcome = sandbox.run(["python", "-c", "import time; time.sleep(1e6)"], mounts_for(job), limits)

    assert outcome.timed_out is True
    assert time.monotonic() - started < 5
    (container,) = engine.containers.values()
    assert container.killed.is_set() and container.removed is True
    assert engine.calls("POST", r"/kill$")


def test_an_out_of_memory_kill_is_reported_from_inspect(engine, sandbox, job):
    engine.scenario = "oom"
    outcome = sandbox.run(["python", "-c", "x = ' ' * 10**12"], mounts_for(job), LIMITS)

    assert outcome.oom_killed is True
    assert outcome.exit_code == 137
    assert outcome.timed_out is False


def test_output_tails_are_bounded(engine, job):
    engine.stdout = b"x" * 200_000 + b"THE END"
    box = get_sandbox("docker", image="grader:test", base_url=engine.base_url, tail_bytes=1024)
    outcome = box.run(["python", "-c", "pass"], mounts_for(job), LIMITS)

    assert len(outcome.stdout_tail) == 1024
    assert outcome.stdout_tail.endswith("THE END")


def test_the_docker_socket_is_never_mounted(engine, sandbox, tmp_path):
    sock_path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    try:
        with pytest.raises(SandboxError):
            sandbox.run(["python"], [Mount(sock_path, "/var/run/docker.sock")], LIMITS)
    finally:
        server.close()
    assert engine.created == []


def test_any_gpu_asks_for_a_count_of_one(engine, sandbox):
    limits = Limits(wall_seconds=2, gpu=True)
    sandbox.run(["python", "-c", "pass"], [], limits)
    cpu_only = Limits(wall_seconds=2)
    sandbox.run(["python", "-c", "pass"], [], cpu_only)

    first, second = engine.created
    assert first["HostConfig"]["DeviceRequests"][0]["Count"] == 1
    assert not second["HostConfig"].get("DeviceRequests")
    assert "CUDA_VISIBLE_DEVICES=" in second["Env"]


def test_warm_start_sends_the_job_line_after_ready(engine, sandbox, job):
    engine.stdout = b"evaluated {stdin}\n"
    box = sandbox.start(["python", "-m", "grader", "serve-one", "--lab", "music"], mounts_for(job), LIMITS)
    assert box.wait_ready(10) is True
    job_line = json.dumps({"submission": "/job/submission", "seed": 3}).encode()
    outcome = box.submit(job_line)

    assert outcome.exit_code == 0
    assert outcome.stdout_tail == f"evaluated {job_line.decode()}\n"
    assert engine.created[0]["OpenStdin"] is True
    (container,) = engine.containers.values()
    assert container.removed is True


def test_probe_runs_a_trivial_container(engine, sandbox):
    engine.stdout = b"sandbox-ok\n"
    sandbox.probe()

    assert engine.created[0]["Cmd"] == ["python", "-c", "print('sandbox-ok')"]


def test_an_engine_that_does_not_answer_makes_the_sandbox_unavailable(tmp_path):
    box = get_sandbox("docker", base_url=f"unix://{tmp_path / 'absent.sock'}", api_timeout=2)

    with pytest.raises(SandboxUnavailable):
        box.probe()
