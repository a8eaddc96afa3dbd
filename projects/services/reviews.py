"""Paper reviews (project Option 2): a student hands one in, a TA grades and releases it, a regrade once on request."""

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from courses import audit, gradebook
from courses.deadlines import arrival_timing, format_course_time
from courses.models import Membership
from projects.models import FEEDBACK_MAX, REGRADE_REASON_MAX, REVIEW_DEADLINE, RUBRIC_MAX, RUBRIC_MIN, PaperReview
from projects.references import clean_paper_link
from projects.selectors import project_deadline
from projects.services.checks import lock_member, require_review_option_free, require_student
from projects.services.uploads import checked_pdf, original_name

REVIEW_PAGES = 1


def submit_review(
    *, member: Membership, paper_title: str, paper_authors: str, paper_link: str, upload: UploadedFile
) -> PaperReview:
    """A student hands in (or, before grading and the deadline, replaces) her one-page review of a paper."""
    require_student(member)
    paper_title = " ".join(paper_title.split())
    paper_authors = " ".join(paper_authors.split())
    if not paper_title or not paper_authors:
        raise ValidationError("Give the paper's title and authors.")
    paper_link = clean_paper_link(paper_link)
    now = timezone.now()
    deadline = project_deadline(course=member.course, key=REVIEW_DEADLINE)
    timing = arrival_timing(deadline=deadline, member=member, at=now) if deadline else None
    if timing is not None and not timing.allowed:
        raise ValidationError(timing.message)
    existing = PaperReview.objects.filter(member=member).first()
    if existing is not None and existing.graded:
        raise ValidationError("Your review has been graded, so it can no longer be replaced.")
    require_review_option_free(member)
    checked_pdf(upload, what="a paper review", exact_pages=REVIEW_PAGES)
    with transaction.atomic():
        member = lock_member(member)
        require_review_option_free(member)
        review = PaperReview.objects.select_for_update().filter(member=member).first() or PaperReview(member=member)
        if review.graded:
            raise ValidationError("Your review has been graded, so it can no longer be replaced.")
        review.paper_title = paper_title[:300]
        review.paper_authors = paper_authors[:500]
        review.paper_link = paper_link
        review.file = upload
        review.original_name = original_name(upload)
        review.size = upload.size
        review.submitted_at = now
        review.late = bool(timing and timing.late)
        review.save()
        return review


def _score(value, label: str) -> int:
    try:
        value = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"Give {label} a score from {RUBRIC_MIN} to {RUBRIC_MAX}.")
    if not RUBRIC_MIN <= value <= RUBRIC_MAX:
        raise ValidationError(f"{label.capitalize()} is scored from {RUBRIC_MIN} to {RUBRIC_MAX}; got {value}.")
    return value


def _grade_state(review: PaperReview) -> dict:
    return {
        "clarity": review.clarity,
        "technical": review.technical,
        "passed": review.passed,
        "released": review.released,
    }


@transaction.atomic
def grade_review(
    *,
    review: PaperReview,
    actor,
    clarity: int,
    technical: int,
    passed: bool,
    feedback: str,
    release: bool = False,
) -> PaperReview:
    """A TA grades a review on the rubric; the student sees it only once released (here or later)."""
    review = PaperReview.objects.select_for_update().get(pk=review.pk)
    clarity = _score(clarity, "clarity of writing")
    technical = _score(technical, "technical communication")
    feedback = feedback.strip()
    if len(feedback) > FEEDBACK_MAX:
        raise ValidationError(f"Feedback may be at most {FEEDBACK_MAX} characters.")
    before = _grade_state(review)
    now = timezone.now()
    review.clarity, review.technical, review.passed, review.feedback = clarity, technical, bool(passed), feedback
    review.graded_by = actor
    review.graded_at = now
    review.released_at = now if release else None
    if review.regrade_pending:
        review.regrade_resolved_at = now
    review.save()
    audit.record(
        course=review.member.course,
        actor=actor,
        action="project.review.grade",
        target=f"review of {review.member.user.email}",
        before=before,
        after=_grade_state(review),
    )
    gradebook.request_sync(course_id=review.member.course_id, actor_id=getattr(actor, "pk", None))
    return review


@transaction.atomic
def release_review(*, review: PaperReview, actor) -> PaperReview:
    review = PaperReview.objects.select_for_update().get(pk=review.pk)
    if not review.graded:
        raise ValidationError("Grade the review before releasing it.")
    if review.released:
        return review
    review.released_at = timezone.now()
    review.save(update_fields=["released_at"])
    audit.record(
        course=review.member.course,
        actor=actor,
        action="project.review.release",
        target=f"review of {review.member.user.email}",
        after={"passed": review.passed},
    )
    gradebook.request_sync(course_id=review.member.course_id, actor_id=getattr(actor, "pk", None))
    return review


@transaction.atomic
def request_regrade(*, review: PaperReview, member: Membership, reason: str) -> PaperReview:
    """A student may ask once, after the grade is released, for her review to be graded again."""
    if review.member_id != member.pk:
        raise ValidationError("This is not your review.")
    review = PaperReview.objects.select_for_update().get(pk=review.pk)
    if not review.released:
        raise ValidationError("You can ask for a regrade once your grade has been released.")
    if review.regrade_requested_at is not None:
        raise ValidationError(
            "You already asked for a regrade on "
            f"{format_course_time(review.regrade_requested_at, member.course)}; a review can be regraded once."
        )
    reason = reason.strip()
    if not reason:
        raise ValidationError("Say what you think was graded wrongly, so the TA knows what to look at.")
    if len(reason) > REGRADE_REASON_MAX:
        raise ValidationError(f"Keep the reason under {REGRADE_REASON_MAX} characters; yours has {len(reason)}.")
    review.regrade_reason = reason
    review.regrade_requested_at = timezone.now()
    review.save(update_fields=["regrade_reason", "regrade_requested_at"])
    return review
