"""The API tokens page and what the token API tells a notebook: real examples, a link to the result, the right page."""

import io
import subprocess
import sys
import zipfile
from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from labs.models import ApiToken, Submission
from tests.factories import artifact_files, make_music_lab, save_lstm, token_for

URL = "/api/labs/{}/submissions"


@pytest.fixture
def lab(course):
    return make_music_lab(course)


def test_token_page_examples_name_the_courses_own_labs_and_their_files_with_a_copy_button(login, student, lab):
    client = login(student)
    body = client.post(reverse("labs:tokens", args=[lab.course.slug]), {"name": "colab", "days": 7}).content.decode()
    site = settings.SITE_URL.rstrip("/")
    assert f"{site}/api/labs/{lab.slug}/submissions" in body
    assert "/api/labs/LAB/" not in body
    assert '["model.safetensors", "config.json"]' in body
    assert 'data-copy="new-token"' in body and f'data-copy="example-{lab.slug}"' in body
    assert "its <code>url</code> is the page where you watch it being graded" in body


def test_the_api_reply_links_to_the_submissions_page(client, student, lab, tmp_path):
    key = token_for(student)
    files = artifact_files(save_lstm(tmp_path / "artifact"))
    body = client.post(URL.format(lab.slug), files, HTTP_AUTHORIZATION=f"Bearer {key}").json()
    submission = Submission.objects.get(pk=body["id"])
    page = reverse("labs:submission", args=[lab.course.slug, lab.slug, submission.pk])
    assert body["url"] == settings.SITE_URL.rstrip("/") + page
    listed = client.get(URL.format(lab.slug), HTTP_AUTHORIZATION=f"Bearer {key}").json()["submissions"]
    assert [s["url"] for s in listed] == [body["url"]]
    detail = client.get(f"/api/submissions/{submission.pk}", HTTP_AUTHORIZATION=f"Bearer {key}").json()
    assert detail["url"] == body["url"]


def test_an_expired_token_is_told_the_address_of_her_courses_tokens_page(client, student, lab):
    key = token_for(student)
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    response = client.get(URL.format(lab.slug), HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 401
    page = settings.SITE_URL.rstrip("/") + reverse("labs:tokens", args=[lab.course.slug])
    assert response.json()["error"] == {
        "code": "bad_token",
        "message": f"This token has expired; create a new one at {page}",
    }


def test_a_revoked_token_is_told_so_and_an_unknown_one_is_pointed_to_the_tokens_page(client, student, lab):
    key = token_for(student)
    ApiToken.objects.update(revoked_at=timezone.now())
    revoked = client.get(URL.format(lab.slug), HTTP_AUTHORIZATION=f"Bearer {key}").json()["error"]["message"]
    assert revoked.startswith("This token was revoked; create a new one at ")
    unknown = client.get(URL.format(lab.slug), HTTP_AUTHORIZATION=f"Bearer {key[:-2]}xx").json()["error"]
    assert unknown["code"] == "bad_token"
    assert "'API tokens'" in unknown["message"] and "lab page" not in unknown["message"]
    assert lab.course.slug not in unknown["message"]  # an unknown key learns nothing about any course


def test_the_lab_page_says_how_to_get_the_grader_and_the_download_checks_her_files(login, student, lab, tmp_path):
    client = login(student)
    page = client.get(reverse("labs:lab", args=[lab.course.slug, lab.slug])).content.decode()
    download = reverse("labs:grader_download", args=[lab.course.slug])
    assert f'href="{download}"' in page
    assert "python grader.pyz check --lab music DIR" in page
    assert "python -m grader check" not in page
    response = client.get(download)
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="grader.pyz"'
    data = b"".join(response.streaming_content) if response.streaming else response.content
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "__main__.py" in names and "grader/cli.py" in names and "grader/result.schema.json" in names
    pyz = tmp_path / "grader.pyz"
    pyz.write_bytes(data)
    good = save_lstm(tmp_path / "good")
    # -I -S: no site-packages and no project on the path, as on a student's bare Python.
    run = [sys.executable, "-I", "-S", str(pyz), "check", "--lab", "music"]
    ok = subprocess.run([*run, str(good)], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert '"hidden_size": 16' in ok.stdout
    (good / "config.json").write_text('{"embedding_dim": 8}')
    bad = subprocess.run([*run, str(good)], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert bad.returncode != 0 and bad.stdout + bad.stderr


def test_the_grader_download_is_for_the_courses_members_only(client, login, outsider, judge, lab):
    download = reverse("labs:grader_download", args=[lab.course.slug])
    assert client.get(download).status_code == 302  # to the sign-in
    assert login(outsider).get(download).status_code == 403
    assert login(judge).get(download).status_code == 403
