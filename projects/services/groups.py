"""Project groups: a student registers one and leaves it; staff add and remove members and extend a group's time."""

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from courses import audit
from courses import services as course_services
from courses.deadlines import arrival_timing, format_course_time
from courses.models import Extension, Membership, Role
from projects.models import GROUP_NAME_MAX, SLIDES_DEADLINE, Group, GroupMember, Invitation, PaperReview
from projects.selectors import allow_both_options, group_members, project_deadline
from projects.services.checks import (
    lock_member,
    require_group_option_free,
    require_group_room,
    require_in_group,
    require_membership_changes_open,
    require_no_group,
    require_reason,
    require_student,
)


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise ValidationError("Give the group a name.")
    if len(name) > GROUP_NAME_MAX:
        raise ValidationError(f"A group name may be at most {GROUP_NAME_MAX} characters; yours has {len(name)}.")
    return name


@transaction.atomic
def create_group(*, member: Membership, name: str) -> Group:
    """A student registers a group with herself as its first member."""
    require_student(member)
    member = lock_member(member)
    name = _clean_name(name)
    require_no_group(member)
    require_group_option_free(member)
    deadline = project_deadline(course=member.course, key=SLIDES_DEADLINE)
    if deadline is not None:
        timing = arrival_timing(deadline=deadline, member=member, at=timezone.now())
        if timing.late:
            raise ValidationError(
                f"The slides deadline ({format_course_time(timing.due_at, member.course)}) has passed: "
                "ask a TA to set up your group."
            )
    if Group.objects.filter(course=member.course, name__iexact=name).exists():
        raise ValidationError(f"A group called “{name}” already exists in this course; choose another name.")
    group = Group.objects.create(course=member.course, name=name, created_by=member.user)
    GroupMember.objects.create(group=group, member=member)
    return group


def _drop_member(group: Group, member: Membership) -> bool:
    """Remove her; an emptied group is deleted. Returns whether the group still exists."""
    GroupMember.objects.filter(group=group, member=member).delete()
    if not group.members.exists():
        group.delete()
        return False
    return True


@transaction.atomic
def leave_group(*, group: Group, member: Membership) -> bool:
    """A student leaves her group before the slides deadline; returns whether the group still exists."""
    group = Group.objects.select_for_update().get(pk=group.pk)
    require_in_group(group, member)
    require_membership_changes_open(group)
    if group.slides.exists() and group.members.count() == 1:
        raise ValidationError("You are the last member and the group has slides; ask a TA to remove the group.")
    return _drop_member(group, member)


@transaction.atomic
def staff_add_member(*, group: Group, member: Membership, actor, reason: str) -> GroupMember:
    """A TA puts a student into a group at any time (after the slides deadline only staff may); logged."""
    reason = require_reason(reason)
    group = Group.objects.select_for_update().get(pk=group.pk)
    if member.course_id != group.course_id or member.role != Role.STUDENT:
        raise ValidationError(f"{member.user.email} is not a student of {group.course.name}.")
    member = lock_member(member)
    require_no_group(member, who=member.user.email)
    if not allow_both_options(group.course) and PaperReview.objects.filter(member=member).exists():
        raise ValidationError(f"{member.user.email} has handed in a paper review (Option 2); remove it first.")
    require_group_room(group, adding=1, count_pending=False)
    before = [m.user.email for m in group_members(group)]
    link = GroupMember.objects.create(group=group, member=member)
    Invitation.objects.filter(invitee=member, status=Invitation.Status.PENDING).update(
        status=Invitation.Status.CANCELLED, responded_at=timezone.now()
    )
    audit.record(
        course=group.course,
        actor=actor,
        action="project.group.add_member",
        target=f"group {group.name}: {member.user.email}",
        before={"members": before},
        after={"members": [*before, member.user.email]},
        reason=reason,
    )
    return link


@transaction.atomic
def staff_remove_member(*, group: Group, member: Membership, actor, reason: str) -> bool:
    """A TA takes a student out of a group; logged. Returns whether the group still exists."""
    reason = require_reason(reason)
    group = Group.objects.select_for_update().get(pk=group.pk)
    require_in_group(group, member)
    before = [m.user.email for m in group_members(group)]
    audit.record(
        course=group.course,
        actor=actor,
        action="project.group.remove_member",
        target=f"group {group.name}: {member.user.email}",
        before={"members": before},
        after={"members": [e for e in before if e != member.user.email]},
        reason=reason,
    )
    return _drop_member(group, member)


@transaction.atomic
def grant_group_extension(
    *, group: Group, until: datetime, reason: str, actor, key: str = SLIDES_DEADLINE
) -> list[Extension]:
    """Give the whole group more time: a courses Extension for every member, so one rule decides what is late."""
    deadline = project_deadline(course=group.course, key=key)
    if deadline is None:
        raise ValidationError("This course has no such deadline to extend.")
    reason = require_reason(reason)
    return [
        course_services.grant_extension(
            deadline=deadline, member=member, until=until, reason=f"group {group.name}: {reason}", actor=actor
        )
        for member in group_members(group)
    ]
