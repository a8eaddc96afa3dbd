"""The presentation schedule: the order of the talks, shuffled or set by hand, and which groups have presented."""

import random
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from courses import audit, gradebook
from courses.deadlines import format_course_time
from courses.models import Course
from projects.models import Group
from projects.services.checks import require_reason


def _apply_order(course: Course, ordered: list[Group]) -> None:
    # Clear first: the slots are unique, and a swap would otherwise collide half-way.
    Group.objects.filter(course=course).update(presentation_order=None)
    for position, group in enumerate(ordered, start=1):
        Group.objects.filter(pk=group.pk).update(presentation_order=position)


@transaction.atomic
def generate_schedule(*, course: Course, seed: str, actor) -> list[Group]:
    """Shuffle every group into a presentation order; the same seed gives the same order."""
    groups = list(Group.objects.select_for_update().filter(course=course).order_by("created_at", "id"))
    random.Random(f"{course.slug}:{seed}").shuffle(groups)
    before = list(
        Group.objects.filter(course=course, presentation_order__isnull=False)
        .order_by("presentation_order")
        .values_list("name", flat=True)
    )
    _apply_order(course, groups)
    audit.record(
        course=course,
        actor=actor,
        action="project.schedule.generate",
        target=course.slug,
        before={"order": before},
        after={"order": [g.name for g in groups], "seed": seed},
    )
    return groups


@transaction.atomic
def set_schedule(*, course: Course, positions: dict[int, int | None], actor) -> list[Group]:
    """Set the order by hand: ``positions`` maps group id to a slot (1, 2, ...) or None for "not scheduled"."""
    groups = {g.pk: g for g in Group.objects.select_for_update().filter(course=course)}
    unknown = set(positions) - set(groups)
    if unknown:
        raise ValidationError("Some of those groups are not in this course.")
    taken: dict[int, str] = {}
    for group_id, slot in positions.items():
        if slot is None:
            continue
        if slot < 1:
            raise ValidationError("Slots are numbered from 1.")
        if slot in taken:
            raise ValidationError(
                f"Slot {slot} is given to both {taken[slot]} and {groups[group_id].name}; give each group its own."
            )
        taken[slot] = groups[group_id].name
    before = {g.name: g.presentation_order for g in groups.values()}
    Group.objects.filter(course=course).update(presentation_order=None)
    for group_id, slot in positions.items():
        if slot is not None:
            Group.objects.filter(pk=group_id).update(presentation_order=slot)
    audit.record(
        course=course,
        actor=actor,
        action="project.schedule.set",
        target=course.slug,
        before=before,
        after={groups[g].name: s for g, s in positions.items()},
    )
    return list(Group.objects.filter(course=course))


@transaction.atomic
def mark_presented(*, group: Group, actor, at: datetime | None = None) -> Group:
    """Record that the group gave its talk (a TA, or the judging app's "now presenting" flow); idempotent."""
    group = Group.objects.select_for_update().get(pk=group.pk)
    if group.presented_at is not None:
        return group
    moment = at or timezone.now()
    # A group's states follow each other in time: it registers, then presents. A talk stamped before the
    # registration (a clock set back, a replayed day) would show "presented" before "registered" on every page.
    if moment < group.created_at:
        raise ValidationError(
            f"{group.name} registered at {format_course_time(group.created_at, group.course)}; "
            "it cannot have presented before that."
        )
    group.presented_at = moment
    group.presented_marked_by = actor if getattr(actor, "is_authenticated", False) else None
    group.save(update_fields=["presented_at", "presented_marked_by"])
    audit.record(
        course=group.course,
        actor=actor,
        action="project.group.presented",
        target=f"group {group.name}",
        after={"presented_at": group.presented_at.isoformat()},
    )
    gradebook.request_sync(course_id=group.course_id, actor_id=getattr(actor, "pk", None))
    return group


@transaction.atomic
def clear_presented(*, group: Group, actor, reason: str) -> Group:
    reason = require_reason(reason)
    group = Group.objects.select_for_update().get(pk=group.pk)
    before = group.presented_at
    group.presented_at = None
    group.presented_marked_by = None
    group.save(update_fields=["presented_at", "presented_marked_by"])
    audit.record(
        course=group.course,
        actor=actor,
        action="project.group.unpresented",
        target=f"group {group.name}",
        before={"presented_at": before.isoformat() if before else None},
        reason=reason,
    )
    gradebook.request_sync(course_id=group.course_id, actor_id=getattr(actor, "pk", None))
    return group
