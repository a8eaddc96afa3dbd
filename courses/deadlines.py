"""The one place that says when a student's work is due, whether a submission at a given moment counts, and
when nobody can still change what a deadline closes (the moment private scores may be released)."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from courses.models import Deadline, Extension, Membership


def active_extension(*, deadline: Deadline, member: Membership) -> Extension | None:
    return deadline.extensions.filter(member=member, revoked_at__isnull=True).first()


def due_with(deadline: Deadline, extension: Extension | None) -> datetime:
    """Her deadline given her active extension (already fetched): the later of the two."""
    due = deadline.course_due_at
    if extension is not None and extension.revoked_at is None and extension.until > due:
        due = extension.until
    return due


def effective_deadline(*, deadline: Deadline, member: Membership | None) -> datetime:
    """The latest of the original deadline, a course-wide extension and her own extension."""
    extension = active_extension(deadline=deadline, member=member) if member is not None else None
    return due_with(deadline, extension)


def last_on_time(deadline: Deadline, *, extensions: list[Extension] | None = None) -> datetime:
    """The last arrival anyone of the course can still make on time: the latest effective deadline, plus grace.

    ``extensions`` stands in for the stored active ones, to ask what a change would do before it is made.
    """
    if extensions is None:
        extensions = list(deadline.extensions.filter(revoked_at__isnull=True))
    latest = deadline.course_due_at
    for extension in extensions:
        if extension.revoked_at is None:
            latest = max(latest, extension.until)
    return latest + timedelta(minutes=deadline.grace_minutes)


def accepts_late(deadline: Deadline) -> bool:
    """Whether work after the last on-time moment is still taken (flagged as late)."""
    return deadline.late_policy == Deadline.LatePolicy.FLAG


@dataclass(frozen=True)
class Settled:
    """Whether what a deadline closes can no longer change: nobody can still submit on time, and late work either
    is refused or cannot move a frozen board."""

    settled: bool
    reason: str = ""


def settled(*, deadline: Deadline, at: datetime, frozen: bool, extensions: list[Extension] | None = None) -> Settled:
    last = last_on_time(deadline, extensions=extensions)
    if at <= last:
        return Settled(
            False,
            f"students can still submit on time until {format_course_time(last, deadline.course)} "
            "(extensions and grace minutes included)",
        )
    if accepts_late(deadline) and not frozen:
        return Settled(False, "late work is still accepted, so freeze the leaderboard first")
    return Settled(True)


# Feature apps register here what a deadline change must not undo (labs: a lab whose private scores are out).
# Each check gets the deadline as it would be after the change and the active extensions it would have, and returns
# the reason to refuse, or "" to allow it.
ReopenCheck = Callable[..., str]
_reopen_checks: list[ReopenCheck] = []


def register_reopen_check(check: ReopenCheck) -> None:
    if check not in _reopen_checks:
        _reopen_checks.append(check)


def reopen_refusal(*, deadline: Deadline, extensions: list[Extension], at: datetime) -> str:
    """Why a change that gives ``deadline`` these values and ``extensions`` may not be made now ("" if it may)."""
    for check in _reopen_checks:
        reason = check(deadline=deadline, extensions=extensions, at=at)
        if reason:
            return reason
    return ""


@dataclass(frozen=True)
class Timing:
    allowed: bool
    late: bool
    due_at: datetime
    message: str = ""


def arrival_timing(*, deadline: Deadline, member: Membership | None, at: datetime) -> Timing:
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
