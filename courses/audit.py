"""Writing the audit log: every change of a deadline, extension, release, freeze, re-run or award."""

from typing import Any

from courses.models import AuditEntry, Course


def record(
    *,
    course: Course,
    actor,
    action: str,
    target: str,
    before: Any = None,
    after: Any = None,
    reason: str = "",
):
    return AuditEntry.objects.create(
        course=course,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        action=action,
        target=target[:200],
        before=before,
        after=after,
        reason=reason[:300],
    )
