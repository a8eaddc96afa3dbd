"""E-mails to students: an evaluation has ended; a deadline is 24 hours away and nothing is submitted."""

from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError
from django.urls import reverse
from django.utils import timezone

from courses.deadlines import effective_deadline, format_course_time
from courses.models import Role
from labs.models import DeadlineReminder, Evaluation, EvaluationStatus, Lab


def evaluation_finished(evaluation: Evaluation) -> None:
    submission = evaluation.submission
    lab = submission.lab
    url = settings.SITE_URL.rstrip("/") + reverse(
        "labs:submission", kwargs={"course_slug": lab.course.slug, "lab_slug": lab.slug, "pk": submission.pk}
    )
    if evaluation.status == EvaluationStatus.SUCCEEDED:
        score = "n/a" if evaluation.public_score is None else f"{evaluation.public_score:.4g}"
        line = f"it was graded: {lab.primary_metric} on the public split = {score}."
    elif evaluation.status == EvaluationStatus.FAILED:
        line = f"the grader could not accept it: {evaluation.error_message}"
    else:
        line = (
            "the platform could not grade it (this does not count against your daily quota); the staff can re-run it."
        )
    send_mail(
        subject=f"[{lab.course.name}] {lab.title}: submission #{submission.number} {evaluation.get_status_display().lower()}",
        message=f"Your submission #{submission.number} to {lab.title}: {line}\n\nDetails: {url}\n",
        from_email=None,
        recipient_list=[submission.member.user.email],
        fail_silently=True,
    )


def remind_deadlines(*, now=None) -> int:
    """Students who have not submitted, 24 hours before their effective deadline: one e-mail each."""
    now = now or timezone.now()
    sent = 0
    for lab in Lab.objects.select_related("course", "deadline"):
        if lab.deadline.course_due_at < now - timedelta(days=60):
            continue
        students = (
            lab.course.memberships.filter(role=Role.STUDENT)
            .select_related("user")
            .exclude(submissions__lab=lab)
            .exclude(pk__in=DeadlineReminder.objects.filter(lab=lab).values("member_id"))
        )
        for member in students:
            due = effective_deadline(deadline=lab.deadline, member=member)
            if not now < due <= now + timedelta(hours=24):
                continue
            try:
                DeadlineReminder.objects.create(lab=lab, member=member)
            except IntegrityError:
                continue
            send_mail(
                subject=f"[{lab.course.name}] {lab.title} is due {format_course_time(due, lab.course)}",
                message=(
                    f"You have not submitted {lab.title} yet. Your deadline is {format_course_time(due, lab.course)}.\n"
                ),
                from_email=None,
                recipient_list=[member.user.email],
                fail_silently=True,
            )
            sent += 1
    return sent


def lab_limits_exceeded(evaluation: Evaluation, *, kind: str) -> bool:
    """Tell the course staff that an artifact within the lab's bounds ran out of the lab's time or memory.

    That is a lab-configuration fault (the limits are too tight for what the lab accepts), never the student's.
    At most one e-mail per lab an hour, so a deadline rush on a misconfigured lab does not flood the staff.
    """
    from django.core.cache import cache

    from courses.models import STAFF_ROLES, Membership

    lab = evaluation.submission.lab
    if not cache.add(f"lab-limits-alert:{lab.pk}", 1, 3600):
        return False
    what = f"its time limit of {lab.time_limit_s} s" if kind == "timeout" else f"its {lab.memory_limit_mb} MB"
    staff = Membership.objects.filter(course=lab.course, role__in=STAFF_ROLES).select_related("user")
    send_mail(
        subject=f"[{lab.course.name}] {lab.title}: an evaluation ran out of {'time' if kind == 'timeout' else 'memory'}",
        message=(
            f"Evaluation {evaluation.pk} of {lab.title} ran out of {what}, although the artifact was within the "
            "lab's bounds. Students are not charged for it; raise the lab's limit (or lower its bounds) and re-run "
            "the affected evaluations from the grading queue.\n"
        ),
        from_email=None,
        recipient_list=[m.user.email for m in staff if m.user.email],
        fail_silently=True,
    )
    return True
