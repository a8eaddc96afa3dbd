"""The labs panel of the student dashboard: what she still has to submit."""

from courses.deadlines import effective_deadline
from courses.models import Role
from labs.selectors import labs_completed


def panel(*, course, member):
    if member.role != Role.STUDENT:
        return None
    labs = list(course.labs.select_related("deadline"))
    if not labs:
        return None
    # "Done" is what every export and grade counts: the one completion rule (an on-time success).
    done = labs_completed(course=course, members=[member])[member.pk]
    rows = [
        {"lab": lab, "due": effective_deadline(deadline=lab.deadline, member=member), "done": done[lab.slug]}
        for lab in labs
    ]
    return {"template": "labs/_panel.html", "rows": rows, "course": course}
