"""The system check that a course's lab rows agree with the grader's declaration of their labs.

Tagged ``database``: Django runs it only when asked (``manage.py check --database default``), so ``migrate`` on a
fresh database is never blocked by it; the grading worker runs the same rule before it grades.
"""

from django.core import checks
from django.db import DatabaseError

from grader.registry import lab_row_problems


def lab_row_errors() -> list[str]:
    """One line per problem of a stored lab row, naming the course and the lab."""
    from labs.models import Lab

    errors = []
    for lab in Lab.objects.select_related("course").only(
        "slug", "kind", "primary_metric", "primary_direction", "tiebreak_metric", "tiebreak_direction", "course__slug"
    ):
        for problem in lab_row_problems(
            kind=lab.kind,
            primary_metric=lab.primary_metric,
            primary_direction=lab.primary_direction,
            tiebreak_metric=lab.tiebreak_metric,
            tiebreak_direction=lab.tiebreak_direction,
        ):
            errors.append(f"lab {lab.course.slug}/{lab.slug}: {problem}")
    return errors


@checks.register(checks.Tags.database)
def labs_agree_with_the_grader(app_configs=None, databases=None, **kwargs):
    if not databases or "default" not in databases:
        return []
    try:
        lines = lab_row_errors()
    except DatabaseError:  # not migrated yet: there are no lab rows to disagree
        return []
    return [
        checks.Error(line, hint="Pick the primary and tie-break among the lab's declared metrics.", id="labs.E001")
        for line in lines
    ]
