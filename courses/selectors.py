"""Reads of the courses app that respect who is asking."""

from dataclasses import dataclass
from datetime import datetime

from courses.deadlines import active_extension, due_with
from courses.models import Course, Deadline, Extension, Membership


@dataclass
class DeadlineView:
    deadline: Deadline
    effective: datetime
    extension: Extension | None

    @property
    def extended_for_everyone(self) -> bool:
        return self.deadline.extended_until is not None


def deadline_view(*, deadline: Deadline, member: Membership | None) -> DeadlineView:
    """One deadline as she sees it (a student's extension included; ``member=None`` for staff)."""
    extension = active_extension(deadline=deadline, member=member) if member is not None else None
    return DeadlineView(deadline, due_with(deadline, extension), extension)


def deadlines_for(*, course: Course, member: Membership | None) -> list[DeadlineView]:
    """Every deadline of the course with her effective time; two queries whatever the count."""
    deadlines = list(course.deadlines.all())
    extensions = {}
    if member is not None:
        for extension in Extension.objects.filter(
            deadline__course=course, member=member, revoked_at__isnull=True
        ).select_related("deadline"):
            extensions[extension.deadline_id] = extension
    views = []
    for deadline in deadlines:
        extension = extensions.get(deadline.id)
        views.append(DeadlineView(deadline, due_with(deadline, extension), extension))
    return views


def her_extensions(*, member: Membership) -> list[Extension]:
    """Every extension granted to her, revoked ones included (the staff's record), newest first."""
    return list(Extension.objects.filter(member=member).select_related("deadline", "granted_by", "revoked_by"))
