"""Who may give or take which role in a course: the one rule behind every change of a membership.

Staff roles (TA, instructor) decide who grades, who sees every student's work and who changes the course, so only
an instructor grants or removes them, and nobody changes her own role (not even an instructor: a second instructor
or the platform operator must). A TA manages the other memberships (students and judges: TAs set up judging) but
never touches a TA's or an instructor's membership. The roster import, the admin and any future role page ask
``membership_change_refusal``; none of them has a rule of its own.
"""

from django.core.exceptions import PermissionDenied

from courses.models import STAFF_ROLES, Course, Membership, Role

# The platform operator (``manage.py import_roster``, the Django admin): an instructor's authority in every course.
OPERATOR = None

_A_ROLE = {Role.STUDENT: "a student", Role.TA: "a TA", Role.INSTRUCTOR: "an instructor", Role.JUDGE: "a judge"}


def a_role(role: str) -> str:
    """The role in a sentence: "a TA", "an instructor"."""
    return _A_ROLE[role]


def role_of_actor(*, course: Course, actor) -> str | None:
    """The role ``actor`` changes this course's memberships with: ``OPERATOR`` for None, else her staff role.

    Anyone else (a student, a judge, another course's staff) gets PermissionDenied. Her membership row is locked
    for the caller's transaction, so an instructor cannot demote her half-way through an import she started.
    """
    if actor is None:
        return OPERATOR
    member = Membership.objects.select_for_update().filter(course=course, user=actor).first()
    if member is None or member.role not in STAFF_ROLES:
        raise PermissionDenied("Only the course's TAs and instructors change its memberships.")
    return member.role


def membership_change_refusal(
    *,
    actor_role: str | None,
    about_herself: bool,
    email: str,
    before_role: str | None,
    after_role: str | None,
    other_fields_change: bool = False,
) -> str | None:
    """Why this change is refused, in words for the staff member who asked; None when it is allowed.

    ``actor_role`` comes from ``role_of_actor``; ``about_herself`` says whether the member is the actor herself;
    ``before_role`` is the member's role now, None when she is not in the course yet; ``after_role`` None removes
    her from the course; ``other_fields_change`` says whether anything else of the membership (her for-credit
    registration, her display name) changes.
    """
    if after_role is None:
        return _removal_refusal(actor_role=actor_role, about_herself=about_herself, email=email, role=before_role)
    role_changes = before_role != after_role
    if not role_changes and not other_fields_change:
        return None
    if about_herself and role_changes and before_role is not None:
        who = "another instructor" if actor_role == Role.INSTRUCTOR else "an instructor"
        return (
            f"you cannot change your own role ({Role(before_role).label} to {Role(after_role).label}); "
            f"{who} of the course can"
        )
    if actor_role is OPERATOR or actor_role == Role.INSTRUCTOR:
        return None
    if actor_role != Role.TA:
        return "only the course's TAs and instructors change its memberships"
    if role_changes and after_role in STAFF_ROLES:
        return f"only an instructor can make someone {a_role(after_role)}; leave this row out or ask an instructor"
    if before_role in STAFF_ROLES:
        return (
            f"{email} is {a_role(before_role)} here; only an instructor can change "
            "the role or registration of a TA or an instructor"
        )
    return None


def _removal_refusal(*, actor_role: str | None, about_herself: bool, email: str, role: str) -> str | None:
    if about_herself:
        return "you cannot remove yourself from the course; another instructor of the course can"
    if actor_role is OPERATOR or actor_role == Role.INSTRUCTOR:
        return None
    if actor_role != Role.TA:
        return "only the course's TAs and instructors change its memberships"
    if role in STAFF_ROLES:
        return f"{email} is {a_role(role)} here; only an instructor can remove a TA or an instructor"
    return None


def last_instructor_refusal(*, member: Membership, after_role: str | None) -> str | None:
    """A course always keeps an instructor: who would otherwise grant staff roles or change its settings?

    Call it with the course's memberships locked (``role_of_actor`` locks the actor's; lock the member's too).
    """
    if member.role != Role.INSTRUCTOR or after_role == Role.INSTRUCTOR:
        return None
    others = Membership.objects.filter(course_id=member.course_id, role=Role.INSTRUCTOR).exclude(pk=member.pk).exists()
    if others:
        return None
    what = "removed" if after_role is None else f"made {a_role(after_role)}"
    return (
        f"{member.user.email} is the course's last instructor and cannot be {what}; "
        "make someone else an instructor first"
    )
