"""Her entry to a lab's board: her best public score unless she marks a submission final, and until when she may."""

from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from courses.deadlines import effective_deadline, format_course_time
from courses.models import Membership
from labs.models import EvaluationStatus, Lab, Submission


@dataclass(frozen=True)
class Entry:
    """Which of her submissions the board ranks, by which public score, and why."""

    submission: Submission | None
    score: float | None
    chosen: bool  # she marked it final; otherwise it is her best public score


def _scored(lab: Lab, member: Membership) -> list[tuple[Submission, float | None]]:
    rows = []
    for submission in Submission.objects.filter(lab=lab, member=member).prefetch_related("evaluations"):
        done = [e for e in submission.evaluations.all() if e.status == EvaluationStatus.SUCCEEDED]
        latest = max(done, key=lambda e: e.pk) if done else None
        rows.append((submission, latest.public_score if latest else None))
    return rows


def her_entry(*, lab: Lab, member: Membership, final: Submission | None = None, ignore_marked: bool = False) -> Entry:
    """Her entry as it is; or as it would be with ``final`` marked, or with no submission marked (``ignore_marked``)."""
    rows = _scored(lab, member)
    chosen = final or (None if ignore_marked else next((s for s, _ in rows if s.is_final), None))
    if chosen is not None:
        return Entry(chosen, dict((s.pk, score) for s, score in rows).get(chosen.pk), True)
    scored = [(s, score) for s, score in rows if score is not None]
    if not scored:
        return Entry(None, None, False)
    sign = 1 if lab.primary_direction == "min" else -1
    # The board's own order: the better score, then the earlier arrival.
    best, score = min(scored, key=lambda row: (sign * row[1], row[0].received_at))
    return Entry(best, score, False)


def choice_closes_at(*, lab: Lab, member: Membership) -> datetime:
    """The last moment her choice may change: her own deadline for the lab (her extension included)."""
    return effective_deadline(deadline=lab.deadline, member=member)


def _check_open(lab: Lab, member: Membership, at: datetime) -> None:
    closes = choice_closes_at(lab=lab, member=member)
    if at > closes:
        raise ValidationError(
            f"Your final entry can no longer change: choices closed with the deadline, "
            f"{format_course_time(closes, lab.course)}."
        )


@transaction.atomic
def mark_final(*, submission: Submission, member: Membership, at: datetime | None = None) -> Submission:
    if submission.member_id != member.pk:
        raise ValidationError("You can only choose your own submission.")
    _check_open(submission.lab, member, at or timezone.now())
    Submission.objects.filter(lab=submission.lab, member=member, is_final=True).update(is_final=False)
    submission.is_final = True
    submission.save(update_fields=["is_final"])
    return submission


@transaction.atomic
def clear_final(*, lab: Lab, member: Membership, at: datetime | None = None) -> None:
    """Back to the default: the board ranks her best public score again."""
    _check_open(lab, member, at or timezone.now())
    Submission.objects.filter(lab=lab, member=member, is_final=True).update(is_final=False)


def scores_worse(lab: Lab, candidate: Entry, current: Entry) -> bool:
    """Whether ranking her by ``candidate`` instead of ``current`` can only move her down the board."""
    if current.score is None:
        return False
    if candidate.score is None:
        return True
    if lab.primary_direction == "min":
        return candidate.score > current.score
    return candidate.score < current.score
