"""The periodic reaper: re-queues evaluations whose worker died, re-sends lost messages, ends hopeless ones."""

from django.utils import timezone

from labs import lifecycle


def reap(*, now=None) -> dict[str, int]:
    now = now or timezone.now()
    counts = lifecycle.requeue_expired(now=now)
    counts["resent"] = lifecycle.resend_lost(now=now)
    return counts
