"""Writes of the courses app: deadlines, extensions, joining, profiles and set-password links."""

from datetime import datetime
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from courses import audit
from courses.deadlines import active_extension, format_course_time, reopen_refusal
from courses.models import Course, Deadline, Extension, Membership, Role
from courses.roles import a_role

User = get_user_model()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _deadline_state(deadline: Deadline) -> dict:
    return {
        "due_at": _iso(deadline.due_at),
        "extended_until": _iso(deadline.extended_until),
        "late_policy": deadline.late_policy,
        "grace_minutes": deadline.grace_minutes,
    }


@transaction.atomic
def update_deadline(
    *,
    deadline: Deadline,
    actor,
    due_at: datetime,
    extended_until: datetime | None,
    late_policy: str,
    grace_minutes: int,
    title: str | None = None,
) -> Deadline:
    """Change a deadline (including the course-wide extension) and log before and after."""
    if extended_until is not None and extended_until <= due_at:
        raise ValidationError(
            "A course-wide extension must be later than the original deadline "
            f"({format_course_time(due_at, deadline.course)})."
        )
    before = _deadline_state(deadline)
    Deadline.objects.select_for_update().filter(pk=deadline.pk).first()  # one change of a deadline at a time
    deadline.due_at = due_at
    deadline.extended_until = extended_until
    deadline.late_policy = late_policy
    deadline.grace_minutes = grace_minutes
    refusal = reopen_refusal(
        deadline=deadline, extensions=list(deadline.extensions.filter(revoked_at__isnull=True)), at=timezone.now()
    )
    if refusal:
        deadline.refresh_from_db()
        raise ValidationError(f"This change is refused: {refusal}.")
    if title:
        deadline.title = title
    deadline.save()
    audit.record(
        course=deadline.course,
        actor=actor,
        action="deadline.update",
        target=deadline.key,
        before=before,
        after=_deadline_state(deadline),
    )
    return deadline


@transaction.atomic
def grant_extension(*, deadline: Deadline, member: Membership, until: datetime, reason: str, actor) -> Extension:
    """Give one student more time; replaces her earlier extension for this deadline."""
    if member.course_id != deadline.course_id:
        raise ValidationError(f"{member.user.email} is not a member of {deadline.course.name}.")
    if member.role != Role.STUDENT:
        raise ValidationError("Extensions are for students.")
    if until <= timezone.now():
        raise ValidationError("The extension must end in the future.")
    if until <= deadline.course_due_at:
        raise ValidationError(
            "The extension must be later than the deadline everyone has "
            f"({format_course_time(deadline.course_due_at, deadline.course)})."
        )
    # Lock the member row so that two TAs granting at once cannot both pass the "one active" rule.
    Membership.objects.select_for_update().get(pk=member.pk)
    previous = active_extension(deadline=deadline, member=member)
    others = [e for e in deadline.extensions.filter(revoked_at__isnull=True) if e.member_id != member.pk]
    refusal = reopen_refusal(
        deadline=deadline,
        extensions=[*others, Extension(deadline=deadline, member=member, until=until)],
        at=timezone.now(),
    )
    if refusal:
        raise ValidationError(f"This extension is refused: {refusal}.")
    if previous:
        previous.revoked_at = timezone.now()
        previous.revoked_by = actor
        previous.save(update_fields=["revoked_at", "revoked_by"])
    extension = Extension.objects.create(deadline=deadline, member=member, until=until, reason=reason, granted_by=actor)
    audit.record(
        course=deadline.course,
        actor=actor,
        action="extension.grant",
        target=f"{deadline.key} for {member.user.email}",
        before={"until": _iso(previous.until)} if previous else None,
        after={"until": _iso(until)},
        reason=reason,
    )
    return extension


@transaction.atomic
def revoke_extension(*, extension: Extension, actor) -> Extension:
    if extension.revoked_at:
        raise ValidationError("This extension was already revoked.")
    extension.revoked_at = timezone.now()
    extension.revoked_by = actor
    extension.save(update_fields=["revoked_at", "revoked_by"])
    audit.record(
        course=extension.deadline.course,
        actor=actor,
        action="extension.revoke",
        target=f"{extension.deadline.key} for {extension.member.user.email}",
        before={"until": _iso(extension.until)},
        after=None,
    )
    return extension


def rotate_join_code(*, course: Course, actor, close: bool = False) -> Course:
    before = {"open": bool(course.join_code)}
    course.join_code = "" if close else Course.new_join_code()
    course.save(update_fields=["join_code"])
    audit.record(
        course=course,
        actor=actor,
        action="join_code.close" if close else "join_code.rotate",
        target=course.slug,
        before=before,
        after={"open": bool(course.join_code)},
    )
    return course


def check_join_code(*, course: Course, code: str) -> None:
    if not course.join_code or not constant_time_compare(code.strip(), course.join_code):
        raise ValidationError("That join code is not valid for this course; ask the course staff for the current one.")


def join_course(*, course: Course, user, code: str) -> Membership:
    """A listener who is not on the roster enrols as a non-credit student with the course's join code."""
    check_join_code(course=course, code=code)
    membership, _ = Membership.objects.get_or_create(
        user=user, course=course, defaults={"role": Role.STUDENT, "registered_for_credit": False}
    )
    return membership


def check_display_name_free(*, member: Membership, display_name: str) -> None:
    """A display name names one member of the course: leaderboards and winners pages tell people apart by it."""
    taken = (
        Membership.objects.filter(course_id=member.course_id, display_name__iexact=display_name)
        .exclude(pk=member.pk)
        .exists()
    )
    if taken:
        raise ValidationError("Someone in this course already uses that display name; choose another.")


def update_profile(*, member: Membership, display_name: str, show_real_name: bool) -> Membership:
    display_name = display_name.strip()
    if not display_name:
        raise ValidationError("Choose a display name: it is what others see on leaderboards.")
    check_display_name_free(member=member, display_name=display_name)
    member.display_name = display_name
    member.show_real_name = show_real_name
    member.save(update_fields=["display_name", "show_real_name"])
    return member


def set_password_link(user) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return settings.SITE_URL.rstrip("/") + reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": token})


def send_join_notice(*, user, course: Course) -> None:
    """Someone asked to join with the address of an existing account: tell its owner, tell the asker nothing."""
    login = settings.SITE_URL.rstrip("/") + reverse("login")
    send_mail(
        subject=f"Joining {course.name}",
        message=(
            f"Someone (perhaps you) asked to join {course.name} with this e-mail address, which already has an "
            f"account. To join, sign in first ({login}), then open the course's join page again and enter the code. "
            "If it was not you, you can ignore this message; nothing was changed.\n"
        ),
        from_email=None,
        recipient_list=[user.email],
        fail_silently=True,
    )


def send_welcome(*, user, course: Course) -> None:
    """A one-time link to choose a password (the console e-mail backend prints it by default)."""
    send_mail(
        subject=f"Welcome to {course.name}",
        message=(
            f"You have been added to {course.name}.\n\n"
            f"Choose your password here (the link works once):\n{set_password_link(user)}\n"
        ),
        from_email=None,
        recipient_list=[user.email],
        fail_silently=True,
    )


def send_added_notice(*, user, course: Course, role: str, actor) -> None:
    """Tell the owner of an existing account that staff enrolled her in a course, and who did.

    A plain notice with a sign-in link: no set-password link (the account has its own way in), and nothing
    taken from the roster file (its names are the importer's words, not hers).
    """
    if actor is None:
        who = "The platform administrators"
    else:
        full_name = actor.get_full_name()
        who = f"{full_name} ({actor.email})" if full_name else actor.email
    dashboard = reverse("courses:dashboard", kwargs={"course_slug": course.slug})
    sign_in = f"{settings.SITE_URL.rstrip('/')}{reverse('login')}?next={quote(dashboard)}"
    send_mail(
        subject=f"You were added to {course.name}",
        message=(
            f"{who} added you to {course.name} as {a_role(role)}.\n\n"
            f"Sign in with your existing account to see the course:\n{sign_in}\n\n"
            "If you do not expect this, reply to the course staff; your account itself was not changed.\n"
        ),
        from_email=None,
        recipient_list=[user.email],
        fail_silently=True,
    )
