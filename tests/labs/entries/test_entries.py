"""Assembling an entry (her own graded work, real file types, the entry deadline) and the staff's view of them."""

import io
import zipfile
from datetime import timedelta

import nbformat
import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from courses import pdfcheck
from courses.models import Deadline, Extension
from labs.entries import services
from labs.entries.models import EntryFile, LabEntry
from labs.models import EvaluationStatus
from tests.courses.test_pdfcheck import pdf_with_javascript, zip_with_pdf_header
from tests.labs.entries.conftest import PDF, PNG, WAV, code, graded, html_output, notebook_bytes, upload, zip_pdf
from tests.projects.conftest import pdf_bytes

pytestmark = pytest.mark.django_db


def test_audio_that_is_not_audio_is_refused_by_its_bytes(lab, student):
    with pytest.raises(ValidationError) as refused:
        services.attach_file(lab=lab, member=student, part="song", upload=upload("song.wav", PNG), at=timezone.now())
    assert "is not an audio file" in refused.value.messages[0]
    item = services.attach_file(lab=lab, member=student, part="song", upload=upload("x.bin", WAV), at=timezone.now())
    assert item.extension == "wav"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (zip_pdf, "That file is not a PDF; its contents say otherwise."),
        (zip_with_pdf_header, "This file is a zip archive with a PDF header in front, not a PDF."),
        (pdf_with_javascript, "This PDF carries JavaScript, which we do not accept in files others open."),
        (lambda: pdf_bytes(1, password="secret"), "This PDF is password-protected."),
        (lambda: pdf_bytes(pdfcheck.MAX_PAGES + 1), f"This PDF has {pdfcheck.MAX_PAGES + 1} pages; at most"),
    ],
    ids=["zip", "zip-with-pdf-header", "javascript", "encrypted", "too-many-pages"],
)
def test_a_report_that_is_not_a_plain_pdf_is_refused_and_changes_nothing(lab, student, data, message):
    services.attach_file(lab=lab, member=student, part="report", upload=upload("r.pdf", PDF), at=timezone.now())
    kept = EntryFile.objects.get()
    with pytest.raises(ValidationError) as refused:
        services.attach_file(
            lab=lab, member=student, part="report", upload=upload("report.pdf", data()), at=timezone.now()
        )
    assert refused.value.messages[0].startswith(message)
    assert list(EntryFile.objects.all()) == [kept] and kept.extension == "pdf"
    assert default_storage.exists(kept.key)


def test_another_students_submission_cannot_be_entered(lab, student, student2):
    theirs = graded(lab, student2)
    with pytest.raises(ValidationError) as refused:
        services.choose_submission(lab=lab, member=student, submission_id=theirs.pk, at=timezone.now())
    assert "your own submissions" in refused.value.messages[0]
    assert not LabEntry.objects.exists()


def test_a_failed_submission_cannot_be_entered(lab, student):
    failed = graded(lab, student, status=EvaluationStatus.FAILED)
    with pytest.raises(ValidationError):
        services.choose_submission(lab=lab, member=student, submission_id=failed.pk, at=timezone.now())
    mine = graded(lab, student)
    entry = services.choose_submission(lab=lab, member=student, submission_id=mine.pk, at=timezone.now())
    assert entry.submission == mine


def test_the_write_up_cannot_be_replaced_after_the_entry_deadline_unless_extended(course, lab, student, ta):
    due = timezone.now() + timedelta(hours=1)
    deadline = Deadline.objects.create(course=course, key="lab1-entry", title="Lab 1 entries", due_at=due)
    lab.entry_kit.deadline = deadline
    lab.entry_kit.save()
    services.set_texts(lab=lab, member=student, texts={"description": "LSTM 1024"}, at=due - timedelta(minutes=5))
    with pytest.raises(ValidationError) as refused:
        services.set_texts(lab=lab, member=student, texts={"description": "changed"}, at=due + timedelta(minutes=5))
    assert "The deadline for Lab 1 entries was" in refused.value.messages[0]
    assert LabEntry.objects.get().description == "LSTM 1024"
    Extension.objects.create(deadline=deadline, member=student, until=due + timedelta(days=1), granted_by=ta.user)
    services.set_texts(lab=lab, member=student, texts={"description": "changed"}, at=due + timedelta(minutes=5))
    assert LabEntry.objects.get().description == "changed"


def test_a_late_upload_through_the_page_changes_nothing(course, lab, student, login):
    services.set_texts(lab=lab, member=student, texts={"description": "v1"}, at=timezone.now())
    lab.deadline.due_at = timezone.now() - timedelta(hours=1)
    lab.deadline.save()
    client = login(student)
    url = reverse("labs:entry_upload", args=[course.slug, lab.slug, "song"])
    response = client.post(url, {"file": upload("s.wav", WAV)}, follow=True)
    assert "The deadline for Lab 1: Music Generation was" in response.content.decode()
    assert not EntryFile.objects.exists()


def _complete_entry(lab, student):
    now = timezone.now()
    services.choose_submission(lab=lab, member=student, submission_id=graded(lab, student).pk, at=now)
    services.set_texts(lab=lab, member=student, texts={"description": "E=256, H=1024"}, at=now)
    services.attach_file(lab=lab, member=student, part="song", upload=upload("s.wav", WAV), at=now)
    services.attach_file(lab=lab, member=student, part="plot", upload=upload("p.png", PNG), at=now)
    services.attach_file(lab=lab, member=student, part="report", upload=upload("r.pdf", PDF), at=now)
    nb = notebook_bytes(code("plot()", [html_output("<b>ok</b><script>alert(1)</script>")]))
    services.attach_file(lab=lab, member=student, part="notebook", upload=upload("n.ipynb", nb), at=now)
    return LabEntry.objects.get(lab=lab, member=student)


def test_staff_see_completeness_and_download_a_bundle_named_for_the_student(course, lab, student, student2, ta, login):
    complete = _complete_entry(lab, student)
    services.set_texts(lab=lab, member=student2, texts={"description": "half"}, at=timezone.now())
    client = login(ta)
    page = client.get(reverse("labs:staff_entries", args=[course.slug, lab.slug])).content.decode()
    assert "ada.lovelace" in page and "alan.turing" in page
    assert "a graded submission; notebook (.ipynb); pdf report" in page
    response = client.get(reverse("labs:entry_bundle", args=[course.slug, lab.slug, complete.pk]))
    assert response["Content-Disposition"] == 'attachment; filename="adalovelace-lab1-music-entry.zip"'
    names = sorted(zipfile.ZipFile(io.BytesIO(response.content)).namelist())
    base = "adalovelace-lab1-music-entry/"
    assert names == [
        base + n for n in ("description.txt", "entry.json", "notebook.ipynb", "plot.png", "report.pdf", "song.wav")
    ]


def test_students_and_judges_cannot_reach_the_staff_views(course, lab, student, student2, judge, login):
    entry = _complete_entry(lab, student)
    for member in (student, judge):
        client = login(member)
        assert client.get(reverse("labs:staff_entries", args=[course.slug, lab.slug])).status_code == 403
        assert client.get(reverse("labs:entry_bundle", args=[course.slug, lab.slug, entry.pk])).status_code == 403
    client = login(student2)
    assert client.get(reverse("labs:entry_notebook", args=[course.slug, lab.slug, entry.pk])).status_code == 404
    assert client.get(reverse("labs:entry_file", args=[course.slug, lab.slug, entry.pk, "song"])).status_code == 404


def test_the_notebook_is_shown_in_a_sandboxed_frame_under_a_strict_policy(course, lab, student, ta, login):
    entry = _complete_entry(lab, student)
    client = login(ta)
    page = client.get(reverse("labs:staff_entry", args=[course.slug, lab.slug, entry.pk])).content.decode()
    frame = page[page.index("<iframe") : page.index("</iframe>")]
    assert " sandbox " in frame and "allow-scripts" not in frame
    response = client.get(reverse("labs:entry_notebook", args=[course.slug, lab.slug, entry.pk]))
    assert response["Content-Security-Policy"] == (
        "default-src 'none'; img-src data:; style-src 'none'; frame-ancestors 'self'; sandbox"
    )
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    body = response.content.decode()
    assert "<b>ok</b>" in body and "<script" not in body


def test_she_assembles_her_entry_on_the_page(course, lab, student, login):
    mine = graded(lab, student)
    client = login(student)
    url = reverse("labs:entry", args=[course.slug, lab.slug])
    client.post(url, {"action": "submission", "submission": mine.pk})
    client.post(url, {"action": "texts", "title": "Reel", "description": "LSTM"})
    nb = notebook_bytes(nbformat.v4.new_markdown_cell("hi"))
    client.post(reverse("labs:entry_upload", args=[course.slug, lab.slug, "notebook"]), {"file": upload("n.ipynb", nb)})
    entry = LabEntry.objects.get()
    assert (entry.submission, entry.title, entry.description) == (mine, "Reel", "LSTM")
    assert entry.files.get().part == "notebook"
    page = client.get(url).content.decode()
    assert "Still missing: pdf report; audio recording of the song; image of the bar plot." in page


def _kit_form(**overrides):
    data = {
        "parts": ["notebook", "discussion"],
        "deadline": "",
        "max_text_chars": 4000,
        "song_types": "wav, ogg",
        "plot_types": "png",
        "max_notebook_mb": 8,
        "max_report_mb": 10,
        "max_song_mb": 20,
        "max_plot_mb": 5,
    }
    return {**data, **overrides}


def test_staff_set_what_an_entry_needs_on_the_entries_page_and_it_is_audited(course, lab, ta, login):
    from courses.models import AuditEntry
    from labs.entries.models import EntryKit

    url = reverse("labs:staff_entries", args=[course.slug, lab.slug])
    response = login(ta).post(url, _kit_form())
    assert response.status_code == 302
    kit = EntryKit.objects.get(lab=lab)
    assert kit.parts == ["notebook", "discussion"] and kit.max_notebook_bytes == 8 * 1024 * 1024
    assert kit.song_types == "wav,ogg" and kit.deadline is None
    entry = AuditEntry.objects.get(action="lab.entry_kit")
    assert entry.after["parts"] == ["notebook", "discussion"] and entry.actor == ta.user


def test_entry_requirements_with_an_unknown_format_or_part_change_nothing(course, lab, ta, student, login):
    from labs.entries.models import EntryKit

    def state():
        return list(EntryKit.objects.filter(lab=lab).values())

    before = state()
    url = reverse("labs:staff_entries", args=[course.slug, lab.slug])
    page = login(ta).post(url, _kit_form(song_types="wav, exe")).content.decode()
    assert "Unknown formats exe" in page
    page = login(ta).post(url, _kit_form(parts=["notebook", "malware"])).content.decode()
    assert "malware is not one of the available choices" in page
    assert state() == before
    assert login(student).post(url, _kit_form()).status_code == 403
    assert state() == before
