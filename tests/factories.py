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


# The published config.json of the course's 2025 base model (its shapes only; no weight is ever needed here).
GEMMA_2_2B_IT_CONFIG = {
    "architectures": ["Gemma2ForCausalLM"],
    "model_type": "gemma2",
    "vocab_size": 256000,
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "num_hidden_layers": 26,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "max_position_embeddings": 8192,
    "sliding_window": 4096,
}
GEMMA_2_2B_IT = "google/gemma-2-2b-it"
_tables: dict[str, dict] = {}


def register_base_model(lab, *, config: dict, name: str, folder: str = "base", actor=None):
    """Register a base model with ``lab`` as staff do, its table derived in this process (cached per config)."""
    import json

    from grader.labs.llm import modules
    from labs.models import BaseModel

    raw = json.dumps(config).encode()
    digest = modules.config_sha256(raw)
    if digest not in _tables:
        _tables[digest] = modules.derive_table(config)
    base = BaseModel.objects.create(
        course=lab.course,
        name=name,
        folder=folder,
        model_type=config["model_type"],
        config=config,
        config_sha256=digest,
        table=_tables[digest],
        registered_by=actor,
    )
    lab.base_model = base
    lab.save(update_fields=["base_model"])
    return base
