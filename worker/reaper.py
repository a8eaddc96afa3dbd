"""The periodic reaper: re-queues evaluations whose worker died, re-sends lost messages, ends hopeless ones."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from labs.models import Evaluation, EvaluationStatus

log = logging.getLogger(__name__)


def reap(*, now=None) -> dict[str, int]:
    from labs.services import send_evaluation
    from worker.grading import notify

    now = now or timezone.now()
    counts = {"requeued": 0, "resent": 0, "gave_up": 0}
    expired = Evaluation.objects.filter(status=EvaluationStatus.RUNNING, lease_expires_at__lt=now)
    for evaluation in expired.only("id", "attempt", "claim_token"):
        with transaction.atomic():
            if evaluation.attempt >= settings.EVALUATION_MAX_ATTEMPTS:
                ended = Evaluation.objects.filter(
                    pk=evaluation.pk, status=EvaluationStatus.RUNNING, claim_token=evaluation.claim_token
                ).update(
                    status=EvaluationStatus.ERROR,
                    finished_at=now,
                    lease_expires_at=None,
                    error_code="worker_lost",
                    error_message=f"The grading worker stopped responding {evaluation.attempt} times; a TA can re-run it.",
                )
                if ended:
                    counts["gave_up"] += 1
                    transaction.on_commit(lambda pk=evaluation.pk: notify(pk))
                continue
            requeued = Evaluation.objects.filter(
                pk=evaluation.pk, status=EvaluationStatus.RUNNING, claim_token=evaluation.claim_token
            ).update(status=EvaluationStatus.QUEUED, claim_token=None, lease_expires_at=None, sent_at=None)
            if requeued:
                counts["requeued"] += 1
                log.warning("evaluation %s: lease expired, re-queued", evaluation.pk)
    stale = now - timedelta(seconds=settings.QUEUED_RESEND_AFTER_SECONDS)
    lost = Evaluation.objects.filter(status=EvaluationStatus.QUEUED).filter(
        sent_at__isnull=True
    ) | Evaluation.objects.filter(status=EvaluationStatus.QUEUED, sent_at__lt=stale)
    for pk in lost.values_list("pk", flat=True)[:1000]:
        if send_evaluation(pk):
            counts["resent"] += 1
    return counts
