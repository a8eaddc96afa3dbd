"""The embedded broker (an SQLite table) carries messages, and its worker polls it often enough for short jobs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import django, json; django.setup()
from celery import signals
from config.celery import app
signals.worker_init.send(sender=None)
with app.connection_for_read() as connection:
    queue = connection.SimpleQueue("probe")
    queue.put({"x": 1})
    message = queue.get(timeout=10)
    message.ack()
    print(json.dumps({"interval": connection.transport.polling_interval, "body": message.payload}))
"""


@pytest.mark.parametrize(("configured", "expected"), [(None, 0.1), ("0.25", 0.25)])
def test_a_worker_polls_the_embedded_broker_at_the_configured_interval(tmp_path, configured, expected):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "CELERY_", "EMBEDDED_"))}
    env.update(VAR_DIR=str(tmp_path), ALLOW_INSECURE_SECRET="1", DJANGO_SETTINGS_MODULE="config.settings")
    if configured is not None:
        env["EMBEDDED_BROKER_POLL_SECONDS"] = configured
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env=env, timeout=120, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"interval": expected, "body": {"x": 1}}
