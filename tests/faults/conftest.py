"""Throwaway PostgreSQL and Redis servers that a test may stop, restart or wipe without touching the runner's own."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from django.db import connection

from tests.e2e.conftest import WorkerProcess, free_port

SERVER_START_SECONDS = 60


class ThrowawayRedis:
    """A redis-server on its own port and folder, with an append-only file so that a restart keeps its queues."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> None:
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"]
            + ["--appendfsync", "always", "--dir", str(self.directory)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise AssertionError(f"redis on port {self.port} did not start")

    def stop(self) -> None:
        """SIGTERM: redis flushes its append-only file and exits, as on a container restart."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)

    def wipe(self) -> None:
        """Lose everything on disk, as when the server comes back on a fresh volume."""
        for path in self.directory.iterdir():
            if path.name != "redis.log":
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    def queued(self, queue: str) -> int:
        return int(self.client().llen(queue))


class ThrowawayPostgres:
    """A PostgreSQL cluster made with initdb in a temporary folder, served on its own port with pg_ctl."""

    def __init__(self):
        self.bin = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
        # initdb refuses to run as root: the cluster belongs to the postgres account, in a folder it can reach.
        self.root = Path(tempfile.mkdtemp(prefix="faults-pg-", dir="/tmp"))
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self.data = self.root / "data"
        self.port = free_port()

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "--auth=trust", "--username=postgres", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop", check=False)

    def psql(self, database: str, sql: str) -> str:
        return self._run(
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-qAtc", sql
        ).stdout

    def copy_of(self, source: dict, name: str) -> None:
        """A new database here holding the schema and rows of the runner's test database."""
        self.psql("postgres", f'CREATE DATABASE "{name}"')
        env = {**os.environ, "PGPASSWORD": source.get("PASSWORD") or ""}
        dump = subprocess.run(
            [str(self.bin / "pg_dump"), "-h", source["HOST"] or "127.0.0.1", "-p", str(source["PORT"] or 5432)]
            + ["-U", source["USER"] or "postgres", "--no-owner", "--no-privileges", source["NAME"]],
            capture_output=True,
            check=True,
            env=env,
            timeout=120,
        )
        subprocess.run(
            [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", name]
            + ["-q", "-v", "ON_ERROR_STOP=1"],
            input=dump.stdout,
            capture_output=True,
            check=True,
            timeout=120,
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    server = ThrowawayPostgres()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()


@contextmanager
def celery_broker(url: str):
    """Point this process's Celery app (what labs.lifecycle.send uses) at another broker, and back afterwards."""
    from config.celery import app

    def point(target: str) -> None:
        if app._pool is not None:
            app._pool.force_close_all()
        app._pool = None
        if "amqp" in app.__dict__:
            app.amqp._producer_pool = None
        # The write URL wins over the broker URL that the settings namespace holds.
        app.conf.broker_write_url = target

    saved = app.conf.broker_write_url
    point(url)
    try:
        yield app
    finally:
        point(saved)


@pytest.fixture
def broker(transactional_db, tmp_path, settings):
    """A throwaway Redis that both this process and the workers use as the broker."""
    server = ThrowawayRedis(tmp_path / "redis")
    server.start()
    settings.CELERY_BROKER_URL = server.url
    with celery_broker(server.url):
        yield server
    server.stop()


@pytest.fixture
def database(transactional_db, postgres_server):
    """Swap this process's connection to a copy of the test database on the throwaway server, and back."""
    name = f"faults_{os.getpid()}_{time.time_ns()}"
    postgres_server.copy_of(connection.settings_dict, name)
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(postgres_server.port), NAME=name, USER="postgres")
    connection.settings_dict["PASSWORD"] = ""
    try:
        yield postgres_server
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
        postgres_server.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def workers(broker, tmp_path):
    """Start grading workers against the throwaway broker (and whatever database this process points at)."""
    started: list[WorkerProcess] = []

    def start(name: str = "worker", **env) -> WorkerProcess:
        env.setdefault("WORKER_CACHE_DIR", tmp_path / "worker-cache")
        env.setdefault("CELERY_BROKER_URL", broker.url)
        worker = WorkerProcess(tmp_path / f"{name}.log", **env)
        worker.log_path = tmp_path / f"{name}.log"
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
    for worker in started:
        print(f"--- {worker.log_path.name} ---\n{worker.log_path.read_text(errors='replace')[-3000:]}")


def worker_log(worker: WorkerProcess) -> str:
    return worker.log_path.read_text(errors="replace")


def descendants(pid: int) -> list[tuple[int, str, float]]:
    """The processes below ``pid``: their ids, command lines and ages in seconds, read from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    children: dict[int, list[int]] = {}
    info: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # After the command: state, ppid, ... with the start time (in clock ticks since boot) 20th.
        info[int(entry.name)] = (command, uptime - int(fields[19]) / ticks)
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            command, age = info.get(child, ("", 0.0))
            found.append((child, command, age))
            stack.append(child)
    return found
