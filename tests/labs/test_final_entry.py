"""Her final entry: shown before it moves her on the board, done only once confirmed, undone until the deadline."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from courses.deadlines import format_course_time
from courses.models import Deadline
from labs.models import Evaluation, Submission
from tests.factories import make_music_lab


@pytest.fixture
def lab(course):
    return make_music_lab(course)


def graded(lab, member, number, bpc):
    submission = Submission.objects.create(
        lab=lab,
        member=member,
        number=number,
        storage_prefix=f"p/{member.pk}/{number}",
        files=[],
        sha256=f"{member.pk}-{number}",
        size=1,
        received_at=timezone.now() - timedelta(hours=10 - number),
    )
    Evaluation.objects.create(
        submission=submission,
        status="succeeded",
        metrics={"public": {"bpc": bpc}},
        finished_at=timezone.now(),
        public_score=bpc,
    )
    return submission


def test_making_a_worse_submission_final_says_it_moves_her_down_and_changes_nothing_until_confirmed(
    login, lab, student
):
    graded(lab, student, 1, 2.0)
    worse = graded(lab, student, 2, 2.5)
    client = login(student)
    url = reverse("labs:mark_final", args=[lab.course.slug, lab.slug, worse.pk])
    for response in (client.get(url), client.post(url)):  # a post without the confirmation only asks
        body = response.content.decode()
        assert response.status_code == 200
        assert "Now the board ranks you by submission #1, your best public score (Bits per character 2.0000)." in body
        assert (
            "After this it ranks you by submission #2 (Bits per character 2.5000), even if a later submission "
            "scores better." in body
        )
        assert "<strong>This moves you down the board:</strong>" in body
        closes = format_course_time(lab.deadline.course_due_at, lab.course)
        assert f'class="course-time">{closes}</time>' in body
    assert not Submission.objects.filter(is_final=True).exists()

    response = client.post(url, {"confirm": "yes"}, follow=True)
    assert f"Submission #2 is now your final entry; the board ranks you by it. You can change this until {closes}." in (
        response.content.decode()
    )
    assert list(Submission.objects.filter(is_final=True)) == [worse]


def test_she_can_go_back_to_her_best_public_score_before_the_deadline(login, lab, student):
    best = graded(lab, student, 1, 2.0)
    worse = graded(lab, student, 2, 2.5)
    Submission.objects.filter(pk=worse.pk).update(is_final=True)
    client = login(student)
    page = client.get(reverse("labs:submission", args=[lab.course.slug, lab.slug, worse.pk])).content.decode()
    url = reverse("labs:clear_final", args=[lab.course.slug, lab.slug])
    assert f'<a href="{url}">Stop using this as my final entry…</a>' in page
    body = client.get(url).content.decode()
    assert "Now the board ranks you by submission #2, marked final (Bits per character 2.5000)." in body
    assert f"After this it ranks you by submission #{best.number} (Bits per character 2.0000), your best" in body
    assert "moves you down" not in body
    body = client.post(url, {"confirm": "yes"}, follow=True).content.decode()
    assert "You have no final entry now; the board ranks you by your best public score. You can change this" in body
    assert not Submission.objects.filter(is_final=True).exists()


def test_after_the_deadline_her_choice_is_refused_and_stays_as_it_was(login, lab, student):
    first = graded(lab, student, 1, 2.0)
    second = graded(lab, student, 2, 2.5)
    Submission.objects.filter(pk=first.pk).update(is_final=True)
    Deadline.objects.filter(pk=lab.deadline_id).update(due_at=timezone.now() - timedelta(minutes=5))
    lab.deadline.refresh_from_db()
    client = login(student)
    closes = format_course_time(lab.deadline.course_due_at, lab.course)
    refusal = f"Your final entry can no longer change: choices closed with the deadline, {closes}."
    for url in (
        reverse("labs:mark_final", args=[lab.course.slug, lab.slug, second.pk]),
        reverse("labs:clear_final", args=[lab.course.slug, lab.slug]),
    ):
        body = client.post(url, {"confirm": "yes"}, follow=True).content.decode()
        assert refusal in body
    assert list(Submission.objects.filter(is_final=True)) == [first]


def test_she_cannot_mark_a_classmates_submission(login, lab, student, student2):
    theirs = graded(lab, student2, 1, 2.0)
    url = reverse("labs:mark_final", args=[lab.course.slug, lab.slug, theirs.pk])
    assert login(student).post(url, {"confirm": "yes"}).status_code == 404
    assert not Submission.objects.filter(is_final=True).exists()
