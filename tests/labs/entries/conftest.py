"""Builders for entry tests: a lab with an entry kit, graded submissions, notebooks."""

import json
import uuid

import nbformat
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from labs.entries.models import EntryKit
from labs.models import Evaluation, EvaluationStatus, Submission
from tests.factories import make_music_lab
from tests.projects.conftest import pdf_bytes


def graded(lab, member, *, status=EvaluationStatus.SUCCEEDED):
    submission = Submission.objects.create(
        lab=lab,
        member=member,
        storage_prefix=f"artifacts/test/{uuid.uuid4().hex}",
        files=[],
        sha256=uuid.uuid4().hex,
        size=1,
        received_at=timezone.now(),
    )
    Evaluation.objects.create(submission=submission, status=status, public_score=1.0)
    return submission


def notebook_bytes(*cells) -> bytes:
    return nbformat.writes(nbformat.v4.new_notebook(cells=list(cells))).encode()


def code(source: str, outputs=()):
    return nbformat.v4.new_code_cell(source, outputs=list(outputs))


def html_output(html: str, **more):
    return nbformat.v4.new_output("display_data", data={"text/html": html, **more})


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)


WAV = (
    b"RIFF\x24\x00\x00\x00WAVEfmt "
    + b"\x10\x00\x00\x00\x01\x00\x01\x00\x22\x56\x00\x00\x44\xac\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00"
)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
PDF = pdf_bytes(1)


@pytest.fixture
def lab(course):
    lab = make_music_lab(course)
    EntryKit.objects.create(lab=lab, parts=["notebook", "report", "description", "song", "plot"])
    return lab


def loads(data: bytes):
    return json.loads(data)


def zip_pdf() -> bytes:
    """A zip archive holding a PDF: its own bytes carry the PDF header within the first kilobyte."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("report.pdf", PDF)
    return buffer.getvalue()
