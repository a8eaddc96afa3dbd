"""schemathesis fuzzes the token API, described by the site's own OpenAPI document, against a running server."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, WebProcess
from tests.factories import make_music_lab, token_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def server(transactional_db, tmp_path):
    web = WebProcess(
        tmp_path / "server.log", workers=2, threads=1, API_UPLOAD_RATE_LIMIT="", ALLOWED_HOSTS="127.0.0.1,localhost"
    )
    web.wait_ready()
    yield web.url
    web.stop()
    assert "Traceback" not in web.log(), web.log()[-3000:]


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
