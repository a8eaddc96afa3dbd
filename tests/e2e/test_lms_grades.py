"""Grades to the LMS from a real Celery worker process: a lab's private release asks for the sync, the worker sends
the score to the LMS on loopback, and a score the LMS refuses is sent again by the task's retry, never by a web
request."""

from datetime import timedelta

import pytest
from django.utils import timezone

from labs import services
from labs.models import Deadline
from lms.models import GradeSent
from tests.e2e.conftest import wait_for
from tests.factories import make_music_lab
from tests.lms.conftest import deployed, lms, section  # noqa: F401 - fixtures
from tests.lms.test_grade_sync import succeeded

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_release_sends_the_lab_score_from_the_worker_and_a_refusal_is_retried(
    section,  # noqa: F811
    lms,  # noqa: F811
    student,
    ta,
    client,
    login,
    start_worker,
):
    lab = make_music_lab(section.course)
    succeeded(lab, student)
    Deadline.objects.filter(pk=lab.deadline_id).update(due_at=timezone.now() - timedelta(days=1))
    lms.refuse_scores = True
    start_worker(LMS_GRADE_SYNC_RETRY_SECONDS=1)
    services.release_private(lab=lab, actor=ta.user)
    refused = wait_for(
        lambda: GradeSent.objects.filter(member=student, status=GradeSent.Status.REFUSED).first(),
        timeout=60,
        what="the worker's first attempt, refused by the LMS",
    )
    assert "locked" in refused.error and lms.scores == []
    lms.refuse_scores = False
    sent = wait_for(
        lambda: GradeSent.objects.filter(member=student, status=GradeSent.Status.SENT).first(),
        timeout=60,
        what="the task's retry",
    )
    assert sent.attempts >= 2
    [score] = lms.scores
    assert (score["userId"], score["scoreGiven"], score["scoreMaximum"]) == ("lms-student", 1, 1)
    # The staff's button asks the worker again; nothing changed, so nothing is sent twice.
    syncs = section.course.audit_entries.filter(action="lms.grades.sync")
    before = syncs.count()
    login(ta)
    answer = client.post(f"/courses/{section.course.slug}/staff/lms/sections/{section.pk}/grades/")
    assert answer.status_code == 302
    wait_for(lambda: syncs.count() > before, timeout=60, what="the staff's sync")
    assert syncs.order_by("-pk").first().after == {"sent": 0, "unchanged": 1, "refused": 0}
    assert len(lms.scores) == 1
