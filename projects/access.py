"""Who may see a group's slides and a student's review: the one place the projects app decides it."""

from importlib import import_module

from courses.models import Membership, Role
from projects.models import Group, GroupMember, PaperReview


def judge_may_see_group(user, group: Group) -> bool:
    """Whether a judge is assigned to this group; the judging app decides, and without it no judge sees anything."""
    try:
        prizes_access = import_module("prizes.access")
    except ImportError:
        return False
    hook = getattr(prizes_access, "judge_may_see_group", None)
    return bool(hook(user, group)) if hook is not None else False


def may_see_group(*, member: Membership, group: Group) -> bool:
    if member.course_id != group.course_id:
        return False
    if member.is_staff_role:
        return True
    if member.role == Role.JUDGE:
        return judge_may_see_group(member.user, group)
    return GroupMember.objects.filter(group=group, member=member).exists()


def may_see_review(*, member: Membership, review: PaperReview) -> bool:
    if member.course_id != review.member.course_id:
        return False
    return member.is_staff_role or review.member_id == member.pk
