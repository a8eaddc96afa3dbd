"""schemathesis fuzzes the token API, described by the site's own OpenAPI document, against a running server."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import worker_env
from tests.factories import make_music_lab, token_for

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(transactional_db, tmp_path):
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    env = worker_env(API_UPLOAD_RATE_LIMIT="", ALLOWED_HOSTS="127.0.0.1,localhost")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--timeout",
            "60",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/api/openapi.json", timeout=2)  # noqa: S310 - loopback
            break
        except OSError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail((tmp_path / "server.log").read_text())
    yield base
    process.terminate()
    process.wait(timeout=20)
    log.close()
    text = (tmp_path / "server.log").read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]


def test_the_token_api_survives_fuzzing_without_5xx_or_off_schema_answers(server, course, student):
    make_music_lab(course)
    key = token_for(student)
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{server}/api/openapi.json",
            "-H",
            f"Authorization: Bearer {key}",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--request-timeout",
            "30",
            "--phases",
            "examples,fuzzing",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env={**os.environ, "NO_COLOR": "1"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[:8000]
    assert "passed" in output.lower()
