"""Asking for a course's grades to be sent to its LMS. A lab's private release, a project's grading or a staff
button asks; a worker's task sends them (``lms.grades``), retrying while the LMS refuses or fails, so no web request
waits for an LMS. A course linked to no LMS section is skipped by the task."""

import logging

from celery import current_app
from django.db import transaction

log = logging.getLogger(__name__)

SYNC_TASK = "worker.tasks.sync_lms_grades"


def request_sync(*, course_id: int, section_id: int | None = None, actor_id: int | None = None) -> None:
    """Sends the task once the current transaction commits, so that it reads what was just saved."""

    def send() -> None:
        try:
            current_app.send_task(
                SYNC_TASK,
                kwargs={"course_id": course_id, "section_id": section_id, "actor_id": actor_id},
                queue="default",
                retry=False,
            )
        except Exception:
            log.warning("could not ask for the LMS grade sync of course %s", course_id, exc_info=True)

    transaction.on_commit(send)
