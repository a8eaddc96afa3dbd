import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from courses import pdfcheck
from grader.limited_child import ChildLimits
from projects import services
from projects.services import uploads
from tests.canary import assert_no_canary, plant_canaries, record_child_environments
from tests.projects.conftest import pdf_bytes, pdf_upload

ROOT = Path(__file__).resolve().parents[2]
PROBE = "tests.grader.childprobe"


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
        [sys.executable, "-m", "courses.pdfcheck", str(path)], capture_output=True, cwd=ROOT, check=True
    )
    assert json.loads(out.stdout) == {"pages": 3, "encrypted": False, "active": [], "error": None}


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


def test_slides_with_javascript_are_refused_by_the_same_rule_as_entry_reports(deadlines, student):
    from tests.courses.test_pdfcheck import pdf_with_javascript

    upload = SimpleUploadedFile("review.pdf", pdf_with_javascript())
    with pytest.raises(ValidationError, match="This PDF carries JavaScript"):
        review(student, upload)


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(deadlines, student, monkeypatch):
    monkeypatch.setattr(uploads, "check_pdf", lambda path: pytest.fail("an oversized file must not be parsed"))
    upload = SimpleUploadedFile("huge.pdf", b"%PDF-1.4\n" + b"0" * (uploads.MAX_PDF_BYTES + 1))
    with pytest.raises(ValidationError, match="The file is 21.0 MB; a paper review may be at most 20 MB"):
        review(student, upload)


def run_instead(monkeypatch, probe_args: list[str], **overrides):
    """Keep check_pdf's own call of the limited child, but run a misbehaving stand-in for the parser."""
    real = pdfcheck.run_limited
    runs = []

    def stand_in(module, args, *, limits: ChildLimits, **kwargs):
        assert module == "courses.pdfcheck"
        runs.append(real(PROBE, probe_args, limits=replace(limits, **overrides), **kwargs))
        return runs[-1]

    monkeypatch.setattr(pdfcheck, "run_limited", stand_in)
    return runs


def test_a_checker_that_runs_too_long_is_killed_and_reported(tmp_path, monkeypatch):
    path = tmp_path / "slow.pdf"
    path.write_bytes(pdf_bytes(1))
    run_instead(monkeypatch, ["burn"], wall_seconds=0.5)
    assert pdfcheck.check_pdf(path) == pdfcheck.PdfCheck(pages=None, encrypted=False, error="timeout")


def test_a_checker_that_runs_out_of_memory_counts_as_unreadable(tmp_path, monkeypatch):
    path = tmp_path / "x.pdf"
    path.write_bytes(pdf_bytes(1))
    runs = run_instead(monkeypatch, ["allocate", str(2 * pdfcheck.CHILD_LIMITS.memory_bytes)])
    assert pdfcheck.check_pdf(path).error == "crashed"
    assert b"MemoryError" in runs[0].stderr


def test_the_child_runs_under_cpu_memory_and_no_file_write_limits(tmp_path, monkeypatch):
    path = tmp_path / "x.pdf"
    path.write_bytes(pdf_bytes(1))
    runs = run_instead(monkeypatch, ["limits"])
    pdfcheck.check_pdf(path)
    limits = json.loads(runs[0].stdout)
    assert limits["RLIMIT_CPU"] == [pdfcheck.CHILD_LIMITS.cpu_seconds] * 2
    assert limits["RLIMIT_AS"] == [pdfcheck.CHILD_LIMITS.memory_bytes] * 2
    assert limits["RLIMIT_FSIZE"] == [0, 0]


def test_the_pdf_parser_starts_without_any_of_the_web_processes_secrets(tmp_path, monkeypatch):
    canaries = plant_canaries(monkeypatch)
    started = record_child_environments(monkeypatch, tmp_path / "children")
    path = tmp_path / "one.pdf"
    path.write_bytes(pdf_bytes(1))
    assert pdfcheck.check_pdf(path) == pdfcheck.PdfCheck(pages=1, encrypted=False, error=None)
    (environment,) = started()
    assert_no_canary(environment, canaries)
