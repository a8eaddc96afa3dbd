"""Who may see a group's slides and a student's review: the one place the projects app decides it."""

from courses.features import may_view_group
from courses.models import Membership, Role
from projects.models import Group, GroupMember, PaperReview


def may_see_group(*, member: Membership, group: Group) -> bool:
    if member.course_id != group.course_id:
        return False
    if member.is_staff_role:
        return True
    if member.role == Role.JUDGE:
        # The judging app decides (a judge assigned to the group's entry); without it no judge sees anything.
        return may_view_group(member.user, group)
    return GroupMember.objects.filter(group=group, member=member).exists()


def may_see_review(*, member: Membership, review: PaperReview) -> bool:
    if member.course_id != review.member.course_id:
        return False
    return member.is_staff_role or review.member_id == member.pk
