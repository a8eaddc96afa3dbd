"""What a judge may see: only entries of her rounds, after declaring conflicts, and never one she is conflicted with."""

from courses.models import Membership, Role
from prizes.models import Conflict, Entry, JudgeAssignment, Round

JUDGING_ROLES = (Role.JUDGE, Role.TA, Role.INSTRUCTOR)


def assignment_for(*, member: Membership, round: Round) -> JudgeAssignment | None:
    if member.course_id != round.course_id or member.role not in JUDGING_ROLES:
        return None
    return JudgeAssignment.objects.filter(round=round, judge=member).first()


def is_conflicted(*, member: Membership, entry: Entry) -> bool:
    return Conflict.objects.filter(judge=member, entry=entry).exists()


def judge_may_see_entry(*, member: Membership, entry: Entry) -> bool:
    """Assigned to the entry's round, has gone through the conflict declaration, and is not conflicted with it."""
    assignment = assignment_for(member=member, round=entry.round)
    if assignment is None or assignment.conflicts_declared_at is None:
        return False
    return not is_conflicted(member=member, entry=entry)


def judge_may_see_group(user, group) -> bool:
    """Hook for the projects app: may this judge open the group's materials (slides)?"""
    if not getattr(user, "is_authenticated", False):
        return False
    member = Membership.objects.filter(user=user, course_id=group.course_id, role__in=JUDGING_ROLES).first()
    if member is None:
        return False
    return any(
        judge_may_see_entry(member=member, entry=entry)
        for entry in Entry.objects.filter(group=group, round__assignments__judge=member).select_related("round")
    )
