"""Builders shared by the web, worker and end-to-end tests: labs, artifacts on disk, uploads, tokens."""

import io
import zipfile
from datetime import timedelta
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from courses.models import Deadline
from grader.registry import get_lab
from labs.models import Lab
from labs.services import create_token
from tests.grader.conftest import TINY_TUNES, save_lstm  # noqa: F401 - re-exported for other test packages

MUSIC = get_lab("music")


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
        # The ranking the grader's music lab declares; a test that makes another kind names its own metrics.
        "primary_metric": MUSIC.primary_metric,
        "primary_direction": MUSIC.primary_direction,
        "tiebreak_metric": MUSIC.tiebreak_metric,
        "tiebreak_direction": MUSIC.tiebreak_direction,
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


def music_dataset(directory: Path) -> Path:
    """A tiny hidden set of the music lab: two public and two private tunes, four in the training file."""
    from grader.labs import music

    music.write_dataset(TINY_TUNES, directory, seed=0, hidden={"public": 2, "private": 2}, name="tiny-tunes")
    return directory


def submit_folder(*, lab, member, directory: Path, received_at=None, description=""):
    """Submit an artifact folder through the same intake and service the web and the API use."""
    from labs.intake import collect
    from labs.services import submit_artifact

    artifact = collect(
        kind=lab.kind,
        uploads=artifact_files(directory),
        max_bytes=lab.max_artifact_bytes,
        options=lab.evaluator_options,
    )
    return submit_artifact(
        lab=lab,
        member=member,
        artifact=artifact,
        received_at=received_at or timezone.now(),
        description=description,
        via_api=True,
    )
