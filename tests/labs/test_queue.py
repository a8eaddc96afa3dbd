"""The staff's grading queue: what each filter shows, and a re-run that must say why."""

import pytest
from django.urls import reverse

from courses.models import AuditEntry
from labs.models import Evaluation
from tests.factories import make_music_lab, save_lstm, submit_folder


@pytest.fixture
def world(course, student, student2, tmp_path):
    lab1 = make_music_lab(course)
    other = make_music_lab(course, slug="lab1-encore", number=4, title="Encore")
    folder = save_lstm(tmp_path / "a")
    ada = submit_folder(lab=lab1, member=student, directory=folder)
    alan = submit_folder(lab=lab1, member=student2, directory=save_lstm(tmp_path / "b", seed=1))
    encore = submit_folder(lab=other, member=student, directory=folder)
    Evaluation.objects.filter(submission=alan).update(status="failed", error_code="nan_outputs")
    return {"lab1": lab1, "other": other, "ada": ada, "alan": alan, "encore": encore}


def shown(client, course, **filters):
    body = client.get(reverse("labs:queue", args=[course.slug]), filters).content.decode()
    ids = [
        e.pk
        for e in Evaluation.objects.order_by("pk")
        if f'href="{reverse("labs:evaluation", args=[course.slug, e.pk])}"' in body
    ]
    return body, ids


def evaluation_of(submission):
    return submission.evaluations.get().pk


def test_the_queue_filters_by_lab_student_and_state(login, course, ta, world):
    client = login(ta)
    ada, alan, encore = (evaluation_of(world[k]) for k in ("ada", "alan", "encore"))
    assert shown(client, course)[1] == [ada, alan, encore]
    assert shown(client, course, lab="lab1-music")[1] == [ada, alan]
    assert shown(client, course, student="alan.tur")[1] == [alan]
    assert shown(client, course, status="failed")[1] == [alan]
    assert shown(client, course, lab="lab1-encore", student="ada", status="queued")[1] == [encore]
    body, ids = shown(client, course, lab="lab1-music", status="running")
    assert ids == [] and "No evaluation matches." in body
    # The filter form keeps what she chose.
    body, _ = shown(client, course, lab="lab1-encore", student="ada")
    assert '<option value="lab1-encore" selected>' in body and 'name="student" value="ada"' in body


def test_an_unknown_filter_is_named_and_ignored(login, course, ta, world):
    body, ids = shown(login(ta), course, lab="lab9", status="lost")
    assert "This course has no lab “lab9”; showing every lab." in body
    assert "“lost” is not a state of an evaluation; showing every state." in body
    assert len(ids) == 3


def test_a_rerun_without_a_reason_is_refused_and_queues_nothing(login, course, ta, world):
    submission = world["ada"]
    client = login(ta)
    url = reverse("labs:rerun", args=[course.slug, submission.pk])
    page = client.get(url).content.decode()
    assert "<h1>Re-run submission #1</h1>" in page and "Why grade it again?" in page
    response = client.post(url, {"reason": "  "})
    assert response.status_code == 400
    assert "Say why it is graded again; the reason goes to the audit log." in response.content.decode()
    assert submission.evaluations.count() == 1
    assert not AuditEntry.objects.filter(action="evaluation.rerun").exists()

    response = client.post(url, {"reason": "worker died"}, follow=True)
    assert submission.evaluations.count() == 2
    newest = submission.evaluations.order_by("-pk").first()
    assert newest.reason == "worker died" and newest.requested_by == ta.user
    assert AuditEntry.objects.get(action="evaluation.rerun").reason == "worker died"
    assert f"queued again as evaluation {newest.pk}." in response.content.decode()
