"""Grades to the LMS from a real Celery worker process: a lab's private release asks for the sync, the worker sends
the score to the LMS on loopback, and a score the LMS refuses is sent again by the task's retry, never by a web
request."""

import time
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
    # The staff's button asks the worker again; nothing changed, so nothing is sent twice. The retry records its
    # sync after the score it sent: wait for that record, or it would be taken for the button's.
    syncs = section.course.audit_entries.filter(action="lms.grades.sync")
    wait_for(lambda: syncs.filter(after__sent=1).exists(), timeout=30, what="the retry's record of its sync")
    before = syncs.count()
    login(ta)
    answer = client.post(f"/courses/{section.course.slug}/staff/lms/sections/{section.pk}/grades/")
    assert answer.status_code == 302
    wait_for(lambda: syncs.count() > before, timeout=60, what="the staff's sync")
    assert syncs.order_by("-pk").first().after == {"sent": 0, "unchanged": 1, "refused": 0}
    assert len(lms.scores) == 1


def test_completions_changing_by_themselves_after_the_release_reach_the_lms_in_one_sync(
    section,  # noqa: F811
    lms,  # noqa: F811
    student,
    student2,
    ta,
    settings,
    start_worker,
):
    from labs import lifecycle
    from lms.models import LmsIdentity
    from tests.lms.test_grade_sync import finishing

    course = section.course
    LmsIdentity.objects.create(
        registration=section.deployment.registration, subject="lms-student-2", user=student2.user
    )
    lab = make_music_lab(course)
    late = [finishing(lab, member, number=1) for member in (student, student2)]  # still grading at the release
    Deadline.objects.filter(pk=lab.deadline_id).update(due_at=timezone.now() - timedelta(days=1))
    start_worker()
    syncs = course.audit_entries.filter(action="lms.grades.sync")
    services.release_private(lab=lab, actor=ta.user)
    wait_for(lambda: syncs.exists(), timeout=60, what="the release's sync")
    assert sorted((s["userId"], s["scoreGiven"]) for s in lms.scores) == [("lms-student", 0), ("lms-student-2", 0)]

    # The grading worker ends both evaluations, one twice over (a re-run), within the coalescing window.
    settings.LMS_GRADE_SYNC_COALESCE_SECONDS = 3
    for evaluation, token in late:
        assert lifecycle.finish(evaluation.pk, token, "succeeded")
    rerun, token = finishing(lab, student, number=2)
    assert lifecycle.finish(rerun.pk, token, "succeeded")
    wait_for(lambda: syncs.count() == 2, timeout=60, what="the coalesced sync")
    assert syncs.order_by("-pk").first().after == {"sent": 2, "unchanged": 0, "refused": 0}
    assert sorted((s["userId"], s["scoreGiven"]) for s in lms.scores[2:]) == [("lms-student", 1), ("lms-student-2", 1)]
    time.sleep(5)  # longer than the window: no second sync follows
    assert syncs.count() == 2
    course.refresh_from_db()
    assert course.grade_sync_due_at is None
