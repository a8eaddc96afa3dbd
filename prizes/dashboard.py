"""The judging panel of the dashboard: a judge's or TA's rounds, and lab rounds that will judge a student's entry."""

from django.utils import timezone

from courses.models import Role
from prizes.models import Round
from prizes.selectors import rounds_for_judge


def panel(*, course, member):
    now = timezone.now()
    if member.role == Role.STUDENT:
        rounds = list(course.judging_rounds.filter(kind=Round.Kind.LAB, opens_at__gt=now).select_related("lab"))
        if not rounds:
            return None
        return {"template": "prizes/_panel.html", "course": course, "lab_rounds": rounds, "assignments": []}
    assignments = [a for a in rounds_for_judge(member) if not a.round.is_closed(now)]
    if not assignments and not member.is_staff_role:
        return None
    return {
        "template": "prizes/_panel.html",
        "course": course,
        "assignments": assignments,
        "lab_rounds": [],
        "staff": member.is_staff_role,
    }
