"""Real Celery worker processes and a gunicorn web process, against the test database, Redis and the bubblewrap
sandbox."""

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def worker_env(**extra) -> dict:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "VAR_DIR": str(settings.VAR_DIR),
        "DEBUG": "0",
        "ALLOW_INSECURE_SECRET": "1",
        "SECURE_HTTPS": "0",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


class WorkerProcess:
    def __init__(self, log_path: Path, **env):
        self.log = log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                "default,grading-music,grading-vision,grading-llm",
                "--concurrency",
                "1",
                "--pool",
                "prefork",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"e2e-{time.time_ns()}@%h",
                "--loglevel",
                "INFO",
            ],
            cwd=REPO,
            env=worker_env(**env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, sig=signal.SIGKILL):
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


class WebProcess:
    """The site under gunicorn on a loopback port, against the same database and broker as the workers. With
    ``tls`` (a certificate and its key), it answers HTTPS at https://localhost:<port> instead."""

    def __init__(
        self, log_path: Path, *, workers: int = 1, threads: int = 4, tls: tuple[Path, Path] | None = None, **env
    ):
        self.log_path = log_path
        port = free_port()
        self.url = f"https://localhost:{port}" if tls else f"http://127.0.0.1:{port}"
        self._tls_context = None
        tls_args = []
        if tls:
            tls_args = ["--certfile", str(tls[0]), "--keyfile", str(tls[1])]
            self._tls_context = ssl.create_default_context(cafile=str(tls[0]))
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}"]
                + ["--workers", str(workers), "--threads", str(threads), "--timeout", "120"]
                + tls_args,
                cwd=REPO,
                env=worker_env(**env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        def answers() -> bool:
            try:
                urllib.request.urlopen(  # noqa: S310 - loopback
                    f"{self.url}/api/openapi.json", timeout=2, context=self._tls_context
                )
                return True
            except OSError:
                return self.process.poll() is not None  # died: stop waiting, the assertion below says so

        wait_for(answers, timeout=60, interval=0.3, what="gunicorn")
        assert self.process.poll() is None, self.log()[-3000:]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture
def clean_broker():
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def start_worker(transactional_db, clean_broker, tmp_path):
    workers = []

    def start(**env):
        env.setdefault("WORKER_CACHE_DIR", tmp_path / "worker-cache")
        worker = WorkerProcess(tmp_path / "worker.log", **env)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
    log = tmp_path / "worker.log"
    if log.exists():
        sys.stdout.write(log.read_text(errors="replace")[-4000:])


def wait_for(predicate, *, timeout: float, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
