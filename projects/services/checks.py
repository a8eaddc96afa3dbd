"""The checks several writes of the projects app share, so that each rule a student can run into is stated once.

Who may take part, the one-group and one-option rules, whether a group may still change, room in a group, and the
reason staff must give.
"""

from django.core.exceptions import ValidationError
from django.utils import timezone

from courses.deadlines import format_course_time
from courses.models import Membership, Role
from projects.models import SLIDES_DEADLINE, Group, GroupMember, Invitation, PaperReview
from projects.selectors import allow_both_options, group_timing


def lock_member(member: Membership) -> Membership:
    # Serialises one student's choices (create, accept, submit a review) so that two tabs cannot both pass a check.
    return Membership.objects.select_for_update().select_related("user", "course").get(pk=member.pk)


def require_student(member: Membership) -> None:
    if member.role != Role.STUDENT:
        raise ValidationError("Final projects are for students of the course.")


def require_no_group(member: Membership, *, who: str = "You") -> None:
    if GroupMember.objects.filter(member=member).exists():
        verb = "are" if who == "You" else "is"
        raise ValidationError(f"{who} {verb} already in a project group; a student belongs to at most one group.")


def require_group_option_free(member: Membership) -> None:
    """Option 1 (a group) and Option 2 (a review) exclude each other unless the course allows both."""
    if allow_both_options(member.course):
        return
    if PaperReview.objects.filter(member=member).exists():
        raise ValidationError(
            "You have handed in a paper review (Option 2); the course allows one project option per student, "
            "so you cannot also join a proposal group (Option 1). Ask a TA if you want to switch."
        )


def require_review_option_free(member: Membership) -> None:
    if allow_both_options(member.course):
        return
    if GroupMember.objects.filter(member=member).exists():
        raise ValidationError(
            "You are in a proposal group (Option 1); the course allows one project option per student, so you "
            "cannot also hand in a paper review (Option 2). Leave the group first if you want to switch."
        )


def require_membership_changes_open(group: Group) -> None:
    timing = group_timing(group=group, key=SLIDES_DEADLINE, at=timezone.now())
    if timing is not None and timing.late:
        raise ValidationError(
            f"The slides deadline ({format_course_time(timing.due_at, group.course)}) has passed: "
            "changes to the group's members now go through a TA."
        )


def require_in_group(group: Group, member: Membership) -> None:
    if not GroupMember.objects.filter(group=group, member=member).exists():
        raise ValidationError("Only members of this group can do that.")


def require_group_room(group: Group, *, adding: int, count_pending: bool) -> None:
    course = group.course
    size = group.members.count()
    pending = group.invitations.filter(status=Invitation.Status.PENDING).count() if count_pending else 0
    if size + pending + adding > course.group_size_max:
        detail = f"{size} member{'s' if size != 1 else ''}"
        if pending:
            detail += f" and {pending} pending invitation{'s' if pending != 1 else ''}"
        raise ValidationError(f"The group already has {detail}; a group has at most {course.group_size_max} members.")


def require_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ValidationError("Say why: changes made by staff are logged with a reason.")
    return reason
