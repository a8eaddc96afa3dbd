"""The service's private files are its user's alone (0600 in 0700 folders), and grading still works behind them."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from config import private_files
from labs.management.commands.register_dataset import register_dataset
from tests.factories import make_music_lab, save_lstm, submit_folder
from worker import grading

REPO = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def private_storage(settings, root: Path) -> None:
    settings.MEDIA_ROOT = root
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root), "base_url": None},
        },
    }


def lay_out_an_old_var(var: Path) -> dict[str, Path]:
    """A var/ as `./dev demo` left it before: everything 0755 and 0644, readable by every user of the host."""
    paths = {
        "var": var,
        "secret_key": var / "secret_key",
        "database": var / "db.sqlite3",
        "wal": var / "db.sqlite3-wal",
        "broker": var / "broker.sqlite3",
        "private": var / "private",
        "artifacts": var / "private" / "artifacts" / "dl" / "lab1-music" / "0123",
        "artifact": var / "private" / "artifacts" / "dl" / "lab1-music" / "0123" / "model.safetensors",
        "cache": var / "worker-cache",
    }
    for key in ("var", "artifacts", "cache"):
        paths[key].mkdir(parents=True, exist_ok=True)
    for key in ("secret_key", "database", "wal", "broker", "artifact"):
        paths[key].write_bytes(b"secret")
    for path in var.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    var.chmod(0o755)
    return paths


def test_the_repair_makes_an_old_var_private_and_a_submission_is_still_graded(
    settings, tmp_path, course, student, music_data_dir
):
    var = tmp_path / "var"
    paths = lay_out_an_old_var(var)

    private_files.repair(var)
    private_files.repair(var)  # idempotent

    for key in ("var", "private", "artifacts"):
        assert mode(paths[key]) == 0o700, key
    for key in ("secret_key", "database", "wal", "broker", "artifact"):
        assert mode(paths[key]) == 0o600, key
    # The worker's cache keeps the modes the worker gives it: the box reads its jobs and datasets through it.
    assert mode(paths["cache"]) == 0o755

    private_storage(settings, paths["private"])
    settings.WORKER_CACHE_DIR = paths["cache"]
    lab = make_music_lab(course, dataset=register_dataset(music_data_dir))
    submission = submit_folder(lab=lab, member=student, directory=save_lstm(tmp_path / "a"))
    stored = [paths["private"] / item["key"] for item in submission.files]
    assert stored and all(path.is_relative_to(var) and mode(path) == 0o600 for path in stored)

    evaluation = submission.evaluations.get()
    assert grading.grade(evaluation.pk) == "succeeded"
    evaluation.refresh_from_db()
    assert evaluation.status == "succeeded" and evaluation.public_score > 0


def test_the_repair_never_follows_a_link_out_of_private_storage(tmp_path):
    var = tmp_path / "var"
    lay_out_an_old_var(var)
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("someone else's file")
    outside.chmod(0o644)
    (var / "private" / "link").symlink_to(outside)
    (var / "secret_key").unlink()
    (var / "secret_key").symlink_to(outside)

    private_files.repair(var)

    assert mode(outside) == 0o644


def test_private_storage_creates_files_0600_in_folders_0700(settings, tmp_path):
    private_storage(settings, tmp_path / "private")
    key = default_storage.save("artifacts/dl/lab1-music/abc/config.json", ContentFile(b"{}"))
    path = tmp_path / "private" / key
    assert mode(path) == 0o600
    for folder in path.parents:
        if folder == tmp_path:
            break
        assert mode(folder) == 0o700, folder


def test_the_embedded_default_creates_its_databases_0600(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "CELERY_"))}
    env.update(VAR_DIR=str(tmp_path), ALLOW_INSECURE_SECRET="1", DJANGO_SETTINGS_MODULE="config.settings")
    # The modes are read while the connections are open: SQLite removes its WAL files when the last one closes.
    probe = (
        "import django, json, os, stat; django.setup()\n"
        "from django.conf import settings\n"
        "from django.db import connection\n"
        "from config.celery import app\n"
        "with connection.cursor() as cursor, app.connection_for_write() as broker:\n"
        "    cursor.execute('create table probe (x integer)')\n"
        "    cursor.execute('insert into probe values (1)')\n"
        "    broker.SimpleQueue('probe').put({'x': 1})\n"
        "    print(json.dumps({p.name: stat.S_IMODE(p.stat().st_mode) for p in settings.VAR_DIR.iterdir()}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, check=True, timeout=120, capture_output=True, text=True
    )
    created = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm", "broker.sqlite3"} <= set(created)
    assert {name: oct(0o600) for name in created} == {name: oct(value) for name, value in created.items()}
    assert {path.name: mode(path) for path in tmp_path.iterdir()} == {path.name: 0o600 for path in tmp_path.iterdir()}
