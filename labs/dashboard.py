"""The labs panel of the student dashboard: what she still has to submit."""

from courses.deadlines import effective_deadline
from courses.models import Role
from labs.models import EvaluationStatus, Submission


def panel(*, course, member):
    if member.role != Role.STUDENT:
        return None
    labs = list(course.labs.select_related("deadline"))
    if not labs:
        return None
    succeeded = set(
        Submission.objects.filter(
            lab__course=course, member=member, evaluations__status=EvaluationStatus.SUCCEEDED
        ).values_list("lab_id", flat=True)
    )
    rows = [
        {"lab": lab, "due": effective_deadline(deadline=lab.deadline, member=member), "done": lab.pk in succeeded}
        for lab in labs
    ]
    return {"template": "labs/_panel.html", "rows": rows, "course": course}
