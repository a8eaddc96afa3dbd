"""The rules of lab submissions: who may submit now, storing an accepted artifact, re-runs, releases, tokens."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from courses import audit, gradebook
from courses.deadlines import arrival_timing, format_course_time, settled
from courses.models import Membership, Role
from labs import lifecycle
from labs.intake import Artifact, UploadRefused
from labs.models import ACTIVE_STATES, ApiToken, Evaluation, EvaluationStatus, Lab, Submission

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubmissionCheck:
    allowed: bool
    late: bool = False
    code: str = "ok"
    message: str = ""
    status: int = 200


def _day_start(lab: Lab, at: datetime) -> datetime:
    local = at.astimezone(lab.course.tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def submissions_counted_today(*, lab: Lab, member: Membership, at: datetime) -> int:
    """Her submissions of the course-time day; those that ended only in platform errors do not count."""
    return (
        Submission.objects.filter(lab=lab, member=member, received_at__gte=_day_start(lab, at), received_at__lte=at)
        .annotate(counted=Count("evaluations", filter=~Q(evaluations__status=EvaluationStatus.ERROR)))
        .filter(counted__gt=0)
        .count()
    )


def may_submit(*, lab: Lab, member: Membership, at: datetime) -> SubmissionCheck:
    """The one rule for 'may this student submit now?': membership, deadline and late policy, quota, in-flight."""
    if member.course_id != lab.course_id:
        return SubmissionCheck(False, code="not_in_course", message="This lab belongs to another course.", status=404)
    if member.role != Role.STUDENT:
        return SubmissionCheck(False, code="not_a_student", message="Only students submit lab work.", status=403)
    timing = arrival_timing(deadline=lab.deadline, member=member, at=at)
    if not timing.allowed:
        return SubmissionCheck(False, late=True, code="deadline_passed", message=timing.message, status=403)
    used = submissions_counted_today(lab=lab, member=member, at=at)
    if used >= lab.daily_quota:
        tomorrow = _day_start(lab, at) + timedelta(days=1)
        return SubmissionCheck(
            False,
            code="quota",
            message=(
                f"You have used today's {lab.daily_quota} submissions for {lab.title}; the next one is possible from "
                f"{format_course_time(tomorrow, lab.course)}. Platform errors do not count."
            ),
            status=429,
        )
    in_flight = Evaluation.objects.filter(
        submission__lab=lab, submission__member=member, status__in=ACTIVE_STATES
    ).count()
    if in_flight >= lab.max_in_flight:
        return SubmissionCheck(
            False,
            code="in_flight",
            message=f"You already have {in_flight} evaluations waiting; submit again when one has finished.",
            status=429,
        )
    return SubmissionCheck(True, late=timing.late, message=timing.message)


def submit_artifact(
    *, lab: Lab, member: Membership, artifact: Artifact, received_at: datetime, description: str = "", via_api: bool
) -> Submission:
    """Store an accepted artifact and queue its evaluation; the task is sent once the rows are committed."""
    prefix = Submission.new_prefix(lab)
    stored: list[str] = []
    try:
        with transaction.atomic():
            # One submission of hers at a time: quota, in-flight and duplicate checks cannot race each other.
            Membership.objects.select_for_update().get(pk=member.pk)
            decision = may_submit(lab=lab, member=member, at=received_at)
            if not decision.allowed:
                raise UploadRefused(decision.message, code=decision.code, status=decision.status)
            earlier = Submission.objects.filter(lab=lab, member=member, sha256=artifact.sha256).first()
            if earlier:
                raise UploadRefused(
                    f"This artifact is identical to your submission #{earlier.number} of "
                    f"{format_course_time(earlier.received_at, lab.course)}; it was not graded again.",
                    code="duplicate",
                    status=409,
                )
            for item in artifact.files:
                with (artifact.directory / item["name"]).open("rb") as handle:
                    stored.append(default_storage.save(f"{prefix}/{item['name']}", File(handle)))
            submission = Submission.objects.create(
                lab=lab,
                member=member,
                storage_prefix=prefix,
                files=[{**item, "key": key} for item, key in zip(artifact.files, stored, strict=True)],
                sha256=artifact.sha256,
                size=artifact.size,
                received_at=received_at,
                late=decision.late,
                description=description[:4000],
                artifact_summary=artifact.summary,
                via_api=via_api,
            )
            evaluation = Evaluation.objects.create(submission=submission)
            lifecycle.send_on_commit(evaluation.pk)
    except BaseException:
        for key in stored:
            default_storage.delete(key)
        raise
    finally:
        artifact.cleanup()
    return submission


@transaction.atomic
def submit_baseline(*, lab: Lab, owner: Membership, artifact: Artifact, label: str) -> Submission:
    """A staff reference model: graded like any submission, shown as a baseline row, never ranked or quota-bound."""
    if not owner.is_staff_role or owner.course_id != lab.course_id:
        raise ValidationError("Baselines are submitted by the course's staff.")
    existing = Submission.objects.filter(lab=lab, baseline_label=label, sha256=artifact.sha256).first()
    if existing:
        artifact.cleanup()
        return existing
    prefix = Submission.new_prefix(lab)
    try:
        files = []
        for item in artifact.files:
            with (artifact.directory / item["name"]).open("rb") as handle:
                files.append({**item, "key": default_storage.save(f"{prefix}/{item['name']}", File(handle))})
    finally:
        artifact.cleanup()
    submission = Submission.objects.create(
        lab=lab,
        member=owner,
        storage_prefix=prefix,
        files=files,
        sha256=artifact.sha256,
        size=artifact.size,
        received_at=timezone.now(),
        artifact_summary=artifact.summary,
        baseline_label=label[:80],
    )
    evaluation = Evaluation.objects.create(submission=submission, reason="baseline")
    lifecycle.send_on_commit(evaluation.pk)
    return submission


@transaction.atomic
def rerun(*, submission: Submission, actor, reason: str = "re-run by staff") -> Evaluation:
    """A TA's re-run adds a new evaluation; the earlier ones stay for the record."""
    evaluation = Evaluation.objects.create(submission=submission, requested_by=actor, reason=reason[:200])
    audit.record(
        course=submission.lab.course,
        actor=actor,
        action="evaluation.rerun",
        target=f"submission {submission.pk}",
        after={"evaluation": evaluation.pk},
        reason=reason,
    )
    lifecycle.send_on_commit(evaluation.pk)
    return evaluation


@transaction.atomic
def regrade_lab(*, lab: Lab, actor, reason: str) -> int:
    """After a grader fix: a new evaluation for every submission of the lab that is not already waiting."""
    submissions = list(lab.submissions.exclude(evaluations__status__in=ACTIVE_STATES).distinct())
    created = Evaluation.objects.bulk_create(
        [Evaluation(submission=s, requested_by=actor, reason=reason[:200]) for s in submissions]
    )
    audit.record(
        course=lab.course,
        actor=actor,
        action="lab.regrade",
        target=lab.slug,
        after={"evaluations": len(created)},
        reason=reason,
    )
    ids = [evaluation.pk for evaluation in created]
    for pk in ids:
        lifecycle.send_on_commit(pk)
    return len(created)


def release_refusal(lab: Lab, *, at: datetime, frozen: bool | None = None, extensions=None, deadline=None) -> str:
    """Why private scores of ``lab`` may not be out at ``at`` ("" when they may): the one deadline rule decides."""
    state = settled(
        deadline=deadline or lab.deadline,
        at=at,
        frozen=(lab.frozen_at is not None) if frozen is None else frozen,
        extensions=extensions,
    )
    return state.reason


@transaction.atomic
def release_private(*, lab: Lab, actor, at: datetime | None = None) -> Lab:
    at = at or timezone.now()
    lab = Lab.objects.select_for_update().select_related("deadline__course").get(pk=lab.pk)
    if lab.private_released_at is not None:
        raise ValidationError("The private scores of this lab are already released.")
    reason = release_refusal(lab, at=at)
    if reason:
        raise ValidationError(f"Private scores can be released only once nobody can change the ranking: {reason}.")
    lab.private_released_at = at
    lab.save(update_fields=["private_released_at"])
    audit.record(
        course=lab.course, actor=actor, action="leaderboard.release", target=lab.slug, after={"released": True}
    )
    gradebook.request_sync(course_id=lab.course_id, actor_id=getattr(actor, "pk", None))
    return lab


@transaction.atomic
def withdraw_release(*, lab: Lab, actor, reason: str) -> Lab:
    """Hide the private scores again (e.g. to grant a late accommodation); audited, with the reason."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("Say why the release is withdrawn: it is written to the audit log.")
    lab = Lab.objects.select_for_update().get(pk=lab.pk)
    if lab.private_released_at is None:
        raise ValidationError("The private scores of this lab are not released.")
    before = lab.private_released_at
    lab.private_released_at = None
    lab.save(update_fields=["private_released_at"])
    audit.record(
        course=lab.course,
        actor=actor,
        action="leaderboard.withdraw_release",
        target=lab.slug,
        before={"released_at": before.isoformat()},
        after={"released": False},
        reason=reason[:300],
    )
    gradebook.request_sync(course_id=lab.course_id, actor_id=getattr(actor, "pk", None))
    return lab


def released_labs_refuse_reopening(*, deadline, extensions, at) -> str:
    """The reopen check labs register with the deadline rule: a released lab's deadline may not reopen."""
    for lab in Lab.objects.filter(deadline_id=deadline.pk, private_released_at__isnull=False):
        if release_refusal(lab, at=at, extensions=extensions, deadline=deadline):
            return (
                f"the private scores of {lab.title} are released, and this change would let students change its "
                "ranking again; withdraw the release first (an audited action), then make the change"
            )
    return ""


@transaction.atomic
def set_frozen(*, lab: Lab, actor, frozen: bool) -> Lab:
    # Locked first, then read: a release racing this cannot slip between the check and the write.
    Lab.objects.select_for_update().filter(pk=lab.pk).first()
    lab.refresh_from_db(fields=["frozen_at", "private_released_at"])
    if not frozen and lab.private_released_at is not None and release_refusal(lab, at=timezone.now(), frozen=False):
        raise ValidationError(
            "Late work is still accepted, so unfreezing would change the released ranking; withdraw the release first."
        )
    before = lab.frozen_at
    lab.frozen_at = timezone.now() if frozen else None
    lab.save(update_fields=["frozen_at"])
    audit.record(
        course=lab.course,
        actor=actor,
        action="leaderboard.freeze" if frozen else "leaderboard.unfreeze",
        target=lab.slug,
        before={"frozen": before is not None},
        after={"frozen": frozen},
    )
    return lab


def create_token(*, member: Membership, name: str, days: int = 30) -> tuple[ApiToken, str]:
    """A new personal token; the key is shown once and only its hash is stored."""
    if member.role != Role.STUDENT:
        raise ValidationError("API tokens are for students submitting lab work.")
    if not 1 <= days <= 180:
        raise ValidationError("A token lives between 1 and 180 days.")
    key = ApiToken.generate_key()
    token = ApiToken.objects.create(
        member=member,
        name=(name or "notebook")[:60],
        key_hash=ApiToken.hash_key(key),
        hint=key[:10],
        expires_at=timezone.now() + timedelta(days=days),
    )
    return token, key


def revoke_token(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def lapsed_token(key: str) -> ApiToken | None:
    """The token of this key if it exists but no longer works (revoked, expired, or its account is closed)."""
    if not key.startswith(ApiToken.PREFIX) or len(key) > 100:
        return None
    return ApiToken.objects.select_related("member__course").filter(key_hash=ApiToken.hash_key(key)).first()


def authenticate_token(key: str) -> ApiToken | None:
    if not key.startswith(ApiToken.PREFIX) or len(key) > 100:
        return None
    token = (
        ApiToken.objects.select_related("member__user", "member__course")
        .filter(key_hash=ApiToken.hash_key(key), revoked_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )
    if token is not None and token.member.user.is_active:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
        return token
    return None
