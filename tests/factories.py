"""Builders shared by the web, worker and end-to-end tests: labs, artifacts on disk, uploads, tokens."""

import io
import zipfile
from datetime import timedelta
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from courses.models import Deadline
from labs.models import Lab
from labs.services import create_token
from tests.grader.conftest import TINY_TUNES, save_lstm  # noqa: F401 - re-exported for other test packages


def make_music_lab(course, *, slug="lab1-music", dataset=None, **fields) -> Lab:
    deadline = Deadline.objects.filter(course=course, key="lab1").first() or Deadline.objects.create(
        course=course, key="lab1", title="Lab 1: Music Generation", due_at=timezone.now() + timedelta(days=3)
    )
    values = {
        "kind": "music",
        "number": 1,
        "title": "Music Generation",
        "deadline": deadline,
        "dataset": dataset,
        "primary_metric": "bpc",
        "primary_direction": "min",
        "tiebreak_metric": "validity",
        "tiebreak_direction": "max",
        "max_artifact_bytes": 5 * 1024 * 1024,
        "evaluator_options": {"songs": "2", "song_length": "200"},
        "time_limit_s": 120,
        "memory_limit_mb": 2048,
    }
    values.update(fields)
    return Lab.objects.create(course=course, slug=slug, **values)


def artifact_files(directory: Path) -> dict:
    return {p.name: SimpleUploadedFile(p.name, p.read_bytes()) for p in sorted(directory.iterdir())}


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def token_for(member, days=30) -> str:
    return create_token(member=member, name="test", days=days)[1]
