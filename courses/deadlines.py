"""The one place that says when a student's work is due and whether a submission at a given moment counts."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from courses.models import Deadline, Extension, Membership


def active_extension(*, deadline: Deadline, member: Membership) -> Extension | None:
    return deadline.extensions.filter(member=member, revoked_at__isnull=True).first()


def effective_deadline(*, deadline: Deadline, member: Membership | None) -> datetime:
    """The latest of the original deadline, a course-wide extension and her own extension."""
    due = deadline.course_due_at
    if member is not None:
        extension = active_extension(deadline=deadline, member=member)
        if extension and extension.until > due:
            due = extension.until
    return due


@dataclass(frozen=True)
class Timing:
    allowed: bool
    late: bool
    due_at: datetime
    message: str = ""


def judge_timing(*, deadline: Deadline, member: Membership | None, at: datetime) -> Timing:
    """Whether work stamped ``at`` (its arrival time) is on time, late but accepted, or refused."""
    due = effective_deadline(deadline=deadline, member=member)
    if at <= due:
        return Timing(allowed=True, late=False, due_at=due)
    grace_end = due + timedelta(minutes=deadline.grace_minutes)
    if at <= grace_end:
        return Timing(allowed=True, late=False, due_at=due)
    when = format_course_time(due, deadline.course)
    if deadline.late_policy == Deadline.LatePolicy.FLAG:
        return Timing(allowed=True, late=True, due_at=due, message=f"Accepted as late: the deadline was {when}.")
    return Timing(
        allowed=False,
        late=True,
        due_at=due,
        message=f"The deadline for {deadline.title} was {when}; ask a TA for an extension if you need one.",
    )


ZONE_LABELS = {
    "America/New_York": "ET",
    "America/Chicago": "CT",
    "America/Denver": "MT",
    "America/Los_Angeles": "PT",
    "Europe/London": "UK time",
    "UTC": "UTC",
}


def zone_label(course) -> str:
    return ZONE_LABELS.get(course.time_zone, course.time_zone)


def format_course_time(moment: datetime, course) -> str:
    """'Fri 24 Jan 2025, 1:00 pm ET': in the course's zone, correct across daylight-saving changes."""
    local = moment.astimezone(course.tz)
    hour = local.strftime("%I").lstrip("0") or "12"
    return f"{local:%a %d %b %Y}, {hour}:{local:%M} {local.strftime('%p').lower()} {zone_label(course)}"
