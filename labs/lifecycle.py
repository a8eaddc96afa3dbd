"""An evaluation's life, in one place: sent, claimed, renewed, finished, retried, re-queued or given up.

Every change of ``Evaluation.status`` goes through this module, and so does the one rule on attempts. Work is sent to
the grading worker by task name, so nothing here (or anywhere in labs) imports the worker: imports run
worker -> labs -> courses.
"""

import logging
import uuid
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from courses import gradebook
from labs.models import FINAL_STATES, Evaluation, EvaluationStatus, Lab
from labs.notifications import evaluation_finished

log = logging.getLogger(__name__)

# The worker's tasks, by name: sending needs no import of the worker.
EVALUATE_TASK = "worker.tasks.evaluate"
JUDGE_STYLE_TASK = "worker.tasks.llm_style_score"


def attempts_left(evaluation: Evaluation) -> int:
    """How many more times this evaluation may be claimed: the one rule on attempts.

    ``attempt`` counts the claims made so far, the current one included; below zero a claim came one too many.
    """
    return settings.EVALUATION_MAX_ATTEMPTS - evaluation.attempt


def send(evaluation_id: int, *, countdown: int = 0) -> bool:
    """Send the grading task; if the broker is down the student still has her answer and the reaper resends."""
    lab = Lab.objects.only("kind").get(submissions__evaluations__pk=evaluation_id)
    try:
        current_app.send_task(
            EVALUATE_TASK, args=[evaluation_id], queue=lab.queue, countdown=countdown or None, retry=False
        )
    except Exception:
        log.warning("could not send evaluation %s; the reaper will resend it", evaluation_id, exc_info=True)
        return False
    Evaluation.objects.filter(pk=evaluation_id, status=EvaluationStatus.QUEUED).update(sent_at=timezone.now())
    return True


def send_on_commit(evaluation_id: int) -> None:
    transaction.on_commit(lambda: send(evaluation_id))


def claim(evaluation_id: int, *, worker: str) -> uuid.UUID | None:
    """queued -> running with a fresh token and lease; None when someone else has it or it is finished."""
    token = uuid.uuid4()
    now = timezone.now()
    claimed = Evaluation.objects.filter(pk=evaluation_id, status=EvaluationStatus.QUEUED).update(
        status=EvaluationStatus.RUNNING,
        claim_token=token,
        lease_expires_at=now + timedelta(seconds=settings.EVALUATION_LEASE_SECONDS),
        started_at=now,
        worker=worker[:200],
        attempt=F("attempt") + 1,
    )
    return token if claimed else None


def renew(evaluation_id: int, token: uuid.UUID) -> bool:
    """Extend the lease while the holder works; False once the claim is someone else's."""
    expires = timezone.now() + timedelta(seconds=settings.EVALUATION_LEASE_SECONDS)
    return bool(
        Evaluation.objects.filter(pk=evaluation_id, claim_token=token, status=EvaluationStatus.RUNNING).update(
            lease_expires_at=expires
        )
    )


def finish(evaluation_id: int, token: uuid.UUID, status: str, **fields) -> bool:
    """Write the outcome only if the token still holds the claim; True when written. A final state notifies."""
    values = {"status": status, "lease_expires_at": None, **fields}
    if status in FINAL_STATES:
        values["finished_at"] = timezone.now()
    if status == EvaluationStatus.QUEUED:
        values["claim_token"] = None
        values["sent_at"] = None
    written = Evaluation.objects.filter(pk=evaluation_id, claim_token=token, status=EvaluationStatus.RUNNING).update(
        **values
    )
    if written and status in FINAL_STATES:
        notify(evaluation_id)  # once: notify itself claims notified_at
        _completion_may_have_changed(evaluation_id)
    return bool(written)


def _completion_may_have_changed(evaluation_id: int) -> None:
    """An evaluation that ends after its lab's private release (a re-run, a late evaluation) may change the student's
    completion, which the LMS already holds: her course's grades are synced again, coalesced with other changes.
    Before the release the LMS holds nothing of the lab, and the release itself asks for the sync."""
    course_id = (
        Lab.objects.filter(submissions__evaluations__pk=evaluation_id, private_released_at__isnull=False)
        .values_list("course_id", flat=True)
        .first()
    )
    if course_id is not None:
        gradebook.request_sync_soon(course_id=course_id)


def retry(evaluation: Evaluation, token: uuid.UUID, **fields) -> bool:
    """A platform fault with attempts left: back to the queue, sent again after a backoff."""
    if not finish(evaluation.pk, token, EvaluationStatus.QUEUED, **fields):
        return False
    countdown = min(300, 5 * 2**evaluation.attempt)
    transaction.on_commit(lambda: send(evaluation.pk, countdown=countdown))
    return True


def give_up(evaluation_id: int, token: uuid.UUID | None, *, code: str, message: str) -> bool:
    """End a running evaluation in ``error`` (no attempts left); only the holder of ``token`` may."""
    return finish(evaluation_id, token, EvaluationStatus.ERROR, error_code=code, error_message=message)


def requeue_expired(*, now: datetime) -> dict[str, int]:
    """Running evaluations whose lease lapsed (their worker died): re-queued, or ended once out of attempts."""
    counts = {"requeued": 0, "gave_up": 0}
    expired = Evaluation.objects.filter(status=EvaluationStatus.RUNNING, lease_expires_at__lt=now)
    for evaluation in expired.only("id", "attempt", "claim_token"):
        if attempts_left(evaluation) <= 0:
            ended = give_up(
                evaluation.pk,
                evaluation.claim_token,
                code="worker_lost",
                message=f"The grading worker stopped responding {evaluation.attempt} times; a TA can re-run it.",
            )
            counts["gave_up"] += int(ended)
        elif finish(evaluation.pk, evaluation.claim_token, EvaluationStatus.QUEUED):
            counts["requeued"] += 1
            log.warning("evaluation %s: lease expired, re-queued", evaluation.pk)
    return counts


def resend_lost(*, now: datetime, limit: int = 1000) -> int:
    """Queued evaluations never sent, or sent long ago and still waiting (a lost message): sent again."""
    stale = now - timedelta(seconds=settings.QUEUED_RESEND_AFTER_SECONDS)
    lost = Evaluation.objects.filter(status=EvaluationStatus.QUEUED, sent_at__isnull=True) | Evaluation.objects.filter(
        status=EvaluationStatus.QUEUED, sent_at__lt=stale
    )
    return sum(1 for pk in lost.values_list("pk", flat=True)[:limit] if send(pk))


def score_columns(lab: Lab, metrics: dict) -> dict:
    """The indexed score columns a leaderboard sorts on, read from the stored metrics (never kept apart)."""

    def pick(split: str, metric: str) -> float | None:
        value = (metrics or {}).get(split, {}).get(metric)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    return {
        "public_score": pick("public", lab.primary_metric),
        "private_score": pick("private", lab.primary_metric),
        "public_tiebreak": pick("public", lab.tiebreak_metric),
        "private_tiebreak": pick("private", lab.tiebreak_metric),
    }


def send_style_judging(evaluation_id: int) -> None:
    """After a Lab 3 success: the LLM judge scores its answers in a task of its own (the sandbox has no network)."""
    transaction.on_commit(lambda: current_app.send_task(JUDGE_STYLE_TASK, args=[evaluation_id], queue="default"))


def notify(evaluation_id: int) -> None:
    """E-mail the student once when her evaluation reaches its final state."""
    claimed = Evaluation.objects.filter(pk=evaluation_id, notified_at__isnull=True).update(notified_at=timezone.now())
    if claimed:
        evaluation_finished(
            Evaluation.objects.select_related("submission__lab__course", "submission__member__user").get(
                pk=evaluation_id
            )
        )
