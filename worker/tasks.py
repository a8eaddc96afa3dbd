"""Celery tasks: they receive ids, not objects, and running one twice does no harm."""

import logging

from celery import shared_task
from celery.signals import worker_process_init, worker_process_shutdown, worker_shutdown
from django.db import close_old_connections

log = logging.getLogger(__name__)


@shared_task(name="worker.tasks.evaluate", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def evaluate(evaluation_id: int) -> str:
    from worker.grading import grade

    close_old_connections()
    outcome = grade(evaluation_id)
    log.info("evaluation %s: %s", evaluation_id, outcome)
    return outcome


@worker_process_shutdown.connect
@worker_shutdown.connect
def close_warm_boxes(**_) -> None:
    """A worker process that ends kills the boxes it kept warm (prefork children and a solo pool alike)."""
    from worker.warming import close

    close()


@worker_process_init.connect
def prewarm_boxes(**_) -> None:
    """A new worker process starts its boxes before its first job arrives (in a thread: Celery gives this signal
    seconds only, and the sandbox probe and the node's health workload come first)."""
    import threading

    threading.Thread(target=_prewarm, daemon=True, name="prewarm").start()


def _prewarm() -> None:
    from django.conf import settings
    from django.db import connections

    from worker.grading import configured_sandbox
    from worker.warming import pool, refill

    try:
        refill(configured_sandbox(), None)
        log.info("pre-started the sandboxes of this worker process's labs")
        if pool().settle(float(settings.SANDBOX_STARTUP_SECONDS)):
            log.info("the sandboxes of this worker process's labs are ready: %d", len(pool().boxes))
    except Exception:  # noqa: BLE001 - a job started without a warm box is slower, not wrong
        log.warning("could not pre-start sandboxes for this worker process", exc_info=True)
    finally:
        connections.close_all()  # this thread's own connection


@shared_task(name="worker.tasks.reap", ignore_result=True)
def reap() -> dict:
    from worker.reaper import reap as run_reaper

    return run_reaper()


@shared_task(name="worker.tasks.remind_deadlines", ignore_result=True)
def remind_deadlines() -> int:
    from labs.notifications import remind_deadlines as run

    return run()


@shared_task(
    name="worker.tasks.llm_style_score",
    bind=True,
    ignore_result=True,
    acks_late=True,
    max_retries=5,
    default_retry_delay=60,
)
def llm_style_score(self, evaluation_id: int) -> str:
    """Score generated answers with the course's LLM judge, after the sandbox has returned (it has no network)."""
    from worker.judging import LlmJudgeUnavailable, score_style_with_llm

    try:
        return score_style_with_llm(evaluation_id)
    except LlmJudgeUnavailable as exc:
        raise self.retry(exc=exc)


@shared_task(name="worker.tasks.sync_lms_grades", bind=True, ignore_result=True, acks_late=True)
def sync_lms_grades(
    self, course_id: int, section_id: int | None = None, actor_id: int | None = None, coalesced: bool = False
) -> int:
    """Sends the course's changed grades to its LMS sections; while the LMS refuses a score or does not answer, the
    task runs again later (``LMS_GRADE_SYNC_RETRIES`` times, ``LMS_GRADE_SYNC_RETRY_SECONDS`` apart). Scores sent
    already are not sent twice, so a rerun does no harm. ``coalesced``: the one sync students' own changes asked for
    (``courses.gradebook.request_sync_soon``)."""
    from django.conf import settings

    from courses import gradebook
    from lms.grades import sync_course

    if coalesced and not self.request.retries:
        gradebook.coalesced_sync_started(course_id=course_id)

    left = sync_course(course_id=course_id, section_id=section_id, actor_id=actor_id)
    if left:
        log.warning("LMS grade sync of course %s left %d unsent: %s", course_id, len(left), "; ".join(left)[:500])
        if self.request.retries < settings.LMS_GRADE_SYNC_RETRIES:
            raise self.retry(
                countdown=settings.LMS_GRADE_SYNC_RETRY_SECONDS, max_retries=settings.LMS_GRADE_SYNC_RETRIES
            )
    return len(left)
