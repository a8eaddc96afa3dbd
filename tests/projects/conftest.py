"""Fixtures of the project tests: project deadlines and PDFs built with pypdf."""

import io
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from pypdf import PdfWriter

from courses.models import Deadline


def set_deadline(course, key: str, due, **extra) -> Deadline:
    deadline, _ = Deadline.objects.update_or_create(
        course=course, key=key, defaults={"title": key.replace("-", " ").capitalize(), "due_at": due, **extra}
    )
    return deadline


@pytest.fixture
def deadlines(course):
    """Groups due tomorrow, slides and reviews the day after: everything open."""
    now = timezone.now()
    return {
        "groups": set_deadline(course, "project-groups", now + timedelta(days=1)),
        "slides": set_deadline(course, "project-slides", now + timedelta(days=2)),
        "review": set_deadline(course, "paper-review", now + timedelta(days=2)),
    }


def pdf_bytes(pages: int = 1, *, password: str | None = None) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=612, height=792)
    if password:
        writer.encrypt(password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_upload(pages: int = 1, *, name: str = "file.pdf", password: str | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, pdf_bytes(pages, password=password), content_type="application/pdf")
