"""The lab pages for students and staff: upload through the form, live status, leaderboard, queue, tokens."""

import pytest
from django.urls import reverse

from labs.models import ApiToken, Submission
from tests.factories import artifact_files, make_music_lab, save_lstm


@pytest.fixture
def lab(course):
    return make_music_lab(course)


def test_student_uploads_through_the_form_and_sees_it_queued(login, student, lab, tmp_path):
    client = login(student)
    files = artifact_files(save_lstm(tmp_path / "a"))
    response = client.post(
        reverse("labs:upload", args=[lab.course.slug, lab.slug]), {**files, "description": "E=8"}, follow=True
    )
    body = response.content.decode()
    submission = Submission.objects.get()
    assert f"Submission #{submission.number} accepted" in body
    assert 'data-status="queued"' in body
    assert submission.description == "E=8" and not submission.via_api


def test_form_upload_without_csrf_token_is_refused(client, student, lab, tmp_path):
    client = client.__class__(enforce_csrf_checks=True)
    client.force_login(student.user)
    files = artifact_files(save_lstm(tmp_path / "a"))
    response = client.post(reverse("labs:upload", args=[lab.course.slug, lab.slug]), files)
    assert response.status_code == 403
    assert not Submission.objects.exists()


def test_bad_file_through_the_form_shows_the_graders_message(login, student, lab, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    files = artifact_files(save_lstm(tmp_path / "a"))
    files["model.safetensors"] = SimpleUploadedFile("model.safetensors", b"\x80\x04K\x01.")
    body = (
        login(student)
        .post(reverse("labs:upload", args=[lab.course.slug, lab.slug]), files, follow=True)
        .content.decode()
    )
    assert "pickle" in body.lower()
    assert not Submission.objects.exists()


def test_a_broken_file_is_refused_in_plain_words_with_code_shown_as_code_and_her_note_kept(
    login, student, lab, tmp_path
):
    import struct

    from django.core.files.uploadedfile import SimpleUploadedFile

    files = artifact_files(save_lstm(tmp_path / "a"))
    # Eight bytes that, read as a safetensors header length, say 2338328219631577204 bytes.
    files["model.safetensors"] = SimpleUploadedFile("model.safetensors", struct.pack("<Q", 2338328219631577204) + b"xy")
    client = login(student)
    url = reverse("labs:upload", args=[lab.course.slug, lab.slug])
    body = client.post(url, {**files, "description": "Two LSTM layers & dropout <0.3>"}, follow=True).content.decode()
    assert (
        '<li class="msg-error">model.safetensors is not a safetensors file: it does not start with a safetensors '
        "header (a file saved with torch.save or in another format looks like this). Save the weights with "
        "<code>from safetensors.torch import save_file; save_file(model.state_dict(), &quot;model.safetensors&quot;)"
        "</code>.</li>"
    ) in body
    assert "2338328219631577204" not in body and "`" not in body.split('<ul class="messages">')[1].split("</ul>")[0]
    assert (
        '<textarea id="description" name="description" rows="3" maxlength="4000">'
        "Two LSTM layers &amp; dropout &lt;0.3&gt;</textarea>"
    ) in body
    assert not Submission.objects.exists()
    # The note is given back once: the next visit starts with an empty form.
    again = client.get(reverse("labs:lab", args=[lab.course.slug, lab.slug])).content.decode()
    assert '<textarea id="description" name="description" rows="3" maxlength="4000"></textarea>' in again


def test_lab_page_shows_the_notebook_snippet_and_her_quota(login, student, lab):
    body = login(student).get(reverse("labs:lab", args=[lab.course.slug, lab.slug])).content.decode()
    assert 'save_file(model.state_dict(), "model.safetensors")' in body
    assert f"/api/labs/{lab.slug}/submissions" in body
    assert "You have used 0 of today's 5 submissions" in body


def test_live_status_fragment_polls_only_while_something_is_in_flight(login, student, lab, tmp_path):
    client = login(student)
    client.post(reverse("labs:upload", args=[lab.course.slug, lab.slug]), artifact_files(save_lstm(tmp_path / "a")))
    fragment = client.get(reverse("labs:mine", args=[lab.course.slug, lab.slug])).content.decode()
    assert 'hx-trigger="every 3s"' in fragment
    Submission.objects.get().evaluations.update(status="succeeded", public_score=3.21)
    fragment = client.get(reverse("labs:mine", args=[lab.course.slug, lab.slug])).content.decode()
    assert "hx-trigger" not in fragment and "3.2100" in fragment


def test_another_students_submission_is_not_found(login, student, student2, lab, tmp_path):
    login(student).post(
        reverse("labs:upload", args=[lab.course.slug, lab.slug]), artifact_files(save_lstm(tmp_path / "a"))
    )
    submission = Submission.objects.get()
    url = reverse("labs:submission", args=[lab.course.slug, lab.slug, submission.pk])
    assert login(student2).get(url).status_code == 404
    file_url = reverse("labs:artifact_file", args=[lab.course.slug, lab.slug, submission.pk, "config.json"])
    assert login(student2).get(file_url).status_code == 404


def test_artifact_files_are_served_as_attachments_under_a_strict_policy(login, student, lab, tmp_path):
    client = login(student)
    client.post(reverse("labs:upload", args=[lab.course.slug, lab.slug]), artifact_files(save_lstm(tmp_path / "a")))
    submission = Submission.objects.get()
    response = client.get(reverse("labs:artifact_file", args=[lab.course.slug, lab.slug, submission.pk, "config.json"]))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"].startswith("default-src 'none'")


def test_student_creates_a_token_sees_it_once_and_revokes_it(login, student, lab):
    client = login(student)
    body = client.post(reverse("labs:tokens", args=[lab.course.slug]), {"name": "colab", "days": 7}).content.decode()
    token = ApiToken.objects.get()
    assert "cpt_" in body and token.name == "colab"
    listing = client.get(reverse("labs:tokens", args=[lab.course.slug])).content.decode()
    assert token.hint in listing and token.key_hash not in listing
    url = reverse("labs:token_revoke", args=[lab.course.slug, token.pk])
    # The list's Revoke button only asks: the token keeps working until she confirms.
    asked = client.post(url).content.decode()
    assert "<h1>Revoke the token colab?</h1>" in asked
    assert "<li>A notebook that uses it can no longer submit or read your results.</li>" in asked
    assert f'<form method="post" action="{url}">' in asked and 'name="confirm" value="yes"' in asked
    token.refresh_from_db()
    assert token.revoked_at is None
    body = client.post(url, {"confirm": "yes"}, follow=True).content.decode()
    assert "Token colab revoked." in body
    token.refresh_from_db()
    assert token.revoked_at is not None


@pytest.mark.parametrize("name", ["labs:queue"])
def test_staff_pages_are_403_for_students_and_render_for_tas(login, student, ta, lab, name):
    url = reverse(name, args=[lab.course.slug])
    assert login(student).get(url).status_code == 403
    assert login(ta).get(url).status_code == 200


def test_ta_sees_the_same_artifact_from_two_students_flagged(login, student, student2, ta, lab, tmp_path):
    from tests.factories import submit_folder

    folder = save_lstm(tmp_path / "shared")
    submit_folder(lab=lab, member=student, directory=folder)
    submit_folder(lab=lab, member=student2, directory=folder)
    body = login(ta).get(reverse("labs:queue", args=[lab.course.slug])).content.decode()
    assert "the same artifact was submitted by different students" in body
    assert student.user.email in body and student2.user.email in body


def test_ta_rerun_and_freeze_are_refused_to_students(login, student, lab, tmp_path):
    from tests.factories import submit_folder

    submission = submit_folder(lab=lab, member=student, directory=save_lstm(tmp_path / "a"))
    client = login(student)
    assert client.post(reverse("labs:rerun", args=[lab.course.slug, submission.pk])).status_code == 403
    assert client.post(reverse("labs:freeze", args=[lab.course.slug, lab.slug]), {"frozen": "1"}).status_code == 403
    lab.refresh_from_db()
    assert lab.frozen_at is None and submission.evaluations.count() == 1


def test_leaderboard_page_renders_for_students_and_judges_are_refused(login, student, judge, lab):
    url = reverse("labs:leaderboard", args=[lab.course.slug, lab.slug])
    assert "Ranked by Bits per character (lower is better)" in login(student).get(url).content.decode()
    assert login(judge).get(url).status_code == 403


def test_her_submissions_are_numbered_per_lab_from_one_whatever_others_sent(course, student, student2, tmp_path):
    from labs.presenters import submission_json
    from tests.factories import make_music_lab, save_lstm, submit_folder

    lab = make_music_lab(course, daily_quota=10, max_in_flight=10)
    other = make_music_lab(course, slug="lab1b", daily_quota=10, max_in_flight=10)
    for seed in range(3):
        submit_folder(lab=lab, member=student2, directory=save_lstm(tmp_path / f"theirs{seed}", seed=seed))
    first = submit_folder(lab=lab, member=student, directory=save_lstm(tmp_path / "a", seed=10))
    second = submit_folder(lab=lab, member=student, directory=save_lstm(tmp_path / "b", seed=11))
    elsewhere = submit_folder(lab=other, member=student, directory=save_lstm(tmp_path / "c", seed=12))
    assert (first.number, second.number, elsewhere.number) == (1, 2, 1)
    assert first.pk > 3, "the global id is not what she is shown"
    assert submission_json(second)["number"] == 2
