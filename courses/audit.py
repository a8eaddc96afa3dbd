"""The audit log: writing every change of a deadline, extension, release, freeze, re-run or award, and reading it."""

from datetime import datetime
from typing import Any

from courses.deadlines import format_course_time
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


def _shown(value: Any, course: Course) -> str:
    """One recorded value in words: a moment in the course's time, a list joined, nothing as a dash."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and "T" in value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        if moment.tzinfo is not None:
            return format_course_time(moment, course)
    if isinstance(value, list | tuple):
        return ", ".join(_shown(v, course) for v in value) or "—"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_shown(v, course)}" for k, v in value.items()) or "—"
    return str(value)


def changes(entry: AuditEntry, course: Course) -> list[str]:
    """What an entry changed, one line per field ("until: Fri ... → Sat ..."), as the audit page shows it."""
    before, after = entry.before, entry.after
    if not isinstance(before, dict) and not isinstance(after, dict):
        if before is None and after is None:
            return []
        return [f"{_shown(before, course)} → {_shown(after, course)}"]
    before = before if isinstance(before, dict) else {}
    after = after if isinstance(after, dict) else {}
    lines = []
    for key in [*before, *(k for k in after if k not in before)]:
        if key in before and key in after:
            if before[key] != after[key]:
                lines.append(f"{key}: {_shown(before[key], course)} → {_shown(after[key], course)}")
            else:
                lines.append(f"{key}: {_shown(after[key], course)} (unchanged)")
        elif key in after:
            lines.append(f"{key}: {_shown(after[key], course)}")
        else:
            lines.append(f"{key}: {_shown(before[key], course)} → removed")
    return lines
