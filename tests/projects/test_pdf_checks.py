import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from projects import pdfcheck, services
from tests.projects.conftest import pdf_bytes, pdf_upload

ROOT = Path(__file__).resolve().parents[2]


def review(member, upload):
    return services.submit_review(
        member=member,
        paper_title="Attention Is All You Need",
        paper_authors="Vaswani et al.",
        paper_link="1706.03762",
        upload=upload,
    )


def test_the_checker_runs_as_a_module_and_prints_json(tmp_path):
    path = tmp_path / "three.pdf"
    path.write_bytes(pdf_bytes(3))
    out = subprocess.run(
        [sys.executable, "-m", "projects.pdfcheck", str(path)], capture_output=True, cwd=ROOT, check=True
    )
    assert json.loads(out.stdout) == {"pages": 3, "encrypted": False, "error": None}


def test_a_one_page_review_is_accepted(deadlines, student):
    saved = review(student, pdf_upload(1, name="my review.pdf"))
    assert saved.original_name == "my review.pdf"
    assert saved.file.name.startswith("projects/reviews/")
    assert "review" not in saved.file.name.removeprefix("projects/reviews/")
    assert saved.file.read().startswith(b"%PDF-")


def test_a_two_page_review_is_refused_with_its_page_count(deadlines, student):
    with pytest.raises(ValidationError) as caught:
        review(student, pdf_upload(2))
    assert caught.value.messages == [
        "A paper review must be exactly 1 page; your PDF has 2 pages. Shorten it and upload it again."
    ]


def test_an_encrypted_pdf_is_refused(deadlines, student):
    with pytest.raises(ValidationError, match="password-protected"):
        review(student, pdf_upload(1, password="secret"))


def test_a_corrupt_pdf_is_refused(deadlines, student):
    upload = SimpleUploadedFile("broken.pdf", b"%PDF-1.7\n" + b"\x00garbage" * 200)
    with pytest.raises(ValidationError, match="damaged and cannot be read"):
        review(student, upload)


def test_a_file_that_is_not_a_pdf_under_a_pdf_name_is_refused(deadlines, student):
    upload = SimpleUploadedFile("review.pdf", b"PK\x03\x04 this is a zip, not a PDF" * 10)
    with pytest.raises(ValidationError, match="not a PDF \\(whatever its name says\\)"):
        review(student, upload)


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(deadlines, student, monkeypatch):
    monkeypatch.setattr(services, "check_pdf", lambda path: pytest.fail("an oversized file must not be parsed"))
    upload = SimpleUploadedFile("huge.pdf", b"%PDF-1.4\n" + b"0" * (services.MAX_PDF_BYTES + 1))
    with pytest.raises(ValidationError, match="The file is 21.0 MB; a paper review may be at most 20 MB"):
        review(student, upload)


def test_a_checker_that_runs_too_long_is_killed_and_reported(tmp_path, monkeypatch):
    path = tmp_path / "slow.pdf"
    path.write_bytes(pdf_bytes(1))
    monkeypatch.setattr(pdfcheck, "WALL_SECONDS", 0.5)
    real_run = subprocess.run

    def sleepy(command, **kwargs):
        return real_run([sys.executable, "-c", "import time; time.sleep(5)"], **kwargs)

    monkeypatch.setattr(pdfcheck.subprocess, "run", sleepy)
    assert pdfcheck.check_pdf(path) == pdfcheck.PdfCheck(pages=None, encrypted=False, error="timeout")


def test_a_checker_that_crashes_counts_as_unreadable(tmp_path, monkeypatch):
    path = tmp_path / "x.pdf"
    path.write_bytes(pdf_bytes(1))
    real_run = subprocess.run
    monkeypatch.setattr(
        pdfcheck.subprocess, "run", lambda command, **kw: real_run([sys.executable, "-c", "raise SystemExit(9)"], **kw)
    )
    assert pdfcheck.check_pdf(path).error == "crashed"


def test_the_child_runs_under_cpu_and_memory_limits(tmp_path):
    script = (
        "import resource, runpy, sys; from projects import pdfcheck; pdfcheck._limit_resources();"
        "print(resource.getrlimit(resource.RLIMIT_CPU)[0], resource.getrlimit(resource.RLIMIT_AS)[0])"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=ROOT, check=True, text=True)
    assert out.stdout.split() == [str(pdfcheck.CHILD_CPU_SECONDS), str(pdfcheck.CHILD_MEMORY_BYTES)]
