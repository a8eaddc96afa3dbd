"""Asking for a course's grades to be sent to its LMS. A lab's private release, a project's grading or a staff
button asks at once; a student's completion that changes by itself (an evaluation finishing after the release) asks
for one coalesced sync per course. A worker's task sends them (``lms.grades``), retrying while the LMS refuses or
fails, so no web request waits for an LMS. A course linked to no LMS section is skipped by the task."""

import logging
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from courses.models import Course

log = logging.getLogger(__name__)

SYNC_TASK = "worker.tasks.sync_lms_grades"
# A coalesced sync still waiting this long after it was due was lost (a broker down, a worker killed): asked again.
LOST_AFTER = timedelta(minutes=10)


def _send(kwargs: dict, *, countdown: int | None = None) -> bool:
    try:
        current_app.send_task(SYNC_TASK, kwargs=kwargs, queue="default", countdown=countdown, retry=False)
    except Exception:
        log.warning("could not ask for the LMS grade sync of course %s", kwargs["course_id"], exc_info=True)
        return False
    return True


def request_sync(*, course_id: int, section_id: int | None = None, actor_id: int | None = None) -> None:
    """Sends the task once the current transaction commits, so that it reads what was just saved."""
    kwargs = {"course_id": course_id, "section_id": section_id, "actor_id": actor_id}
    transaction.on_commit(lambda: _send(kwargs))


def request_sync_soon(*, course_id: int) -> None:
    """After the current transaction commits: one sync of the course ``LMS_GRADE_SYNC_COALESCE_SECONDS`` from now,
    unless one is already waiting, so a hundred evaluations finishing in a minute send one sync, not a hundred. The
    course's ``grade_sync_due_at`` is the claim, taken by one conditional update whichever process asks."""

    def claim_and_send() -> None:
        now = timezone.now()
        wait = settings.LMS_GRADE_SYNC_COALESCE_SECONDS
        due = now + timedelta(seconds=wait)
        waiting = Q(grade_sync_due_at__isnull=False, grade_sync_due_at__gte=now - LOST_AFTER)
        if not Course.objects.filter(pk=course_id).exclude(waiting).update(grade_sync_due_at=due):
            return
        if not _send({"course_id": course_id, "coalesced": True}, countdown=wait):
            Course.objects.filter(pk=course_id, grade_sync_due_at=due).update(grade_sync_due_at=None)

    transaction.on_commit(claim_and_send)


def coalesced_sync_started(*, course_id: int) -> None:
    """The waiting sync begins: a change from now on asks for another, as this one may read the course before it."""
    Course.objects.filter(pk=course_id).update(grade_sync_due_at=None)
