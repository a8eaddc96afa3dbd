"""Reads of the projects app: a group's deadlines, prize eligibility, the schedule and the grading queue."""

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Case, IntegerField, Q, Value, When

from courses.deadlines import Timing, arrival_timing, effective_deadline, format_course_time
from courses.models import Course, Deadline, Membership
from projects.models import (
    GROUPS_DEADLINE,
    Group,
    GroupMember,
    Invitation,
    PaperReview,
    ProjectSettings,
)


def project_deadline(*, course: Course, key: str) -> Deadline | None:
    """The courses Deadline with this key; None means the course set no such limit."""
    return course.deadlines.filter(key=key).first()


def allow_both_options(course: Course) -> bool:
    row = ProjectSettings.objects.filter(course=course).first()
    return bool(row and row.allow_both_options)


def group_members(group: Group) -> list[Membership]:
    return [gm.member for gm in group.members.select_related("member__user").order_by("joined_at", "id")]


def group_of(member: Membership) -> Group | None:
    link = GroupMember.objects.filter(member=member).select_related("group").first()
    return link.group if link else None


def _binding_member(*, deadline: Deadline, group: Group) -> Membership | None:
    """The member whose effective deadline is latest: group work is due when the group's last extension ends.

    A group extension is granted to every member, so this is normally everyone's deadline; it also keeps a group
    whose member holds a personal extension from being refused while she still may work.
    """
    members = group_members(group)
    if not members:
        return None
    return max(members, key=lambda m: effective_deadline(deadline=deadline, member=m))


def group_timing(*, group: Group, key: str, at: datetime) -> Timing | None:
    """Whether group work (slides, membership changes) at ``at`` is on time; None when the course has no such deadline."""
    deadline = project_deadline(course=group.course, key=key)
    if deadline is None:
        return None
    return arrival_timing(deadline=deadline, member=_binding_member(deadline=deadline, group=group), at=at)


def group_due(*, group: Group, key: str) -> datetime | None:
    deadline = project_deadline(course=group.course, key=key)
    if deadline is None:
        return None
    return effective_deadline(deadline=deadline, member=_binding_member(deadline=deadline, group=group))


def member_due(*, member: Membership, key: str) -> datetime | None:
    deadline = project_deadline(course=member.course, key=key)
    return effective_deadline(deadline=deadline, member=member) if deadline else None


@dataclass(frozen=True)
class Eligibility:
    """Prize eligibility of a proposal group. ``reasons`` says what is missing; it is empty when eligible."""

    eligible: bool
    reasons: list[str] = field(default_factory=list)


def group_eligibility(group: Group) -> Eligibility:
    """Whether a proposal group may win a prize, and why not.

    Stable interface (the prizes app relies on it). A group is eligible when all of these hold:
    - it was registered (created) by the group-registration deadline (courses Deadline ``project-groups``, with the
      grace period and any extension its members hold); a course without that deadline has no such limit;
    - at least one member is registered for credit;
    - it has at least ``course.group_size_min`` members.
    A group that misses the registration deadline may still present; it just cannot win.
    """
    course = group.course
    members = group_members(group)
    reasons = []
    timing = group_timing(group=group, key=GROUPS_DEADLINE, at=group.created_at)
    if timing is not None and timing.late:
        reasons.append(
            f"Registered {format_course_time(group.created_at, course)}, after the group-registration deadline "
            f"({format_course_time(timing.due_at, course)}): the group may still present but cannot win a prize."
        )
    if not any(m.registered_for_credit for m in members):
        reasons.append(
            "No member is registered for credit: a group needs at least one for-credit student to win a prize."
        )
    if len(members) < course.group_size_min:
        reasons.append(
            f"The group has {len(members)} member{'s' if len(members) != 1 else ''}; "
            f"a group needs at least {course.group_size_min}."
        )
    return Eligibility(eligible=not reasons, reasons=reasons)


def pending_invitations_for(member: Membership) -> list[Invitation]:
    return list(
        Invitation.objects.filter(invitee=member, status=Invitation.Status.PENDING).select_related(
            "group", "invited_by__user"
        )
    )


def groups_of_course(course: Course):
    return (
        Group.objects.filter(course=course)
        .prefetch_related("members__member__user", "slides")
        .order_by(
            Case(When(presentation_order__isnull=True, then=Value(1)), default=Value(0), output_field=IntegerField()),
            "presentation_order",
            "created_at",
        )
    )


def review_queue(*, course: Course, show: str = "open"):
    """Reviews for TAs: regrade requests first, then ungraded, then graded but unreleased; ``all`` adds released."""
    reviews = PaperReview.objects.filter(member__course=course).select_related("member__user", "graded_by")
    if show != "all":
        reviews = reviews.filter(
            Q(graded_at__isnull=True)
            | Q(released_at__isnull=True)
            | Q(regrade_requested_at__isnull=False, regrade_resolved_at__isnull=True)
        )
    return reviews.annotate(
        rank=Case(
            When(regrade_requested_at__isnull=False, regrade_resolved_at__isnull=True, then=Value(0)),
            When(graded_at__isnull=True, then=Value(1)),
            When(released_at__isnull=True, then=Value(2)),
            default=Value(3),
            output_field=IntegerField(),
        )
    ).order_by("rank", "submitted_at")
