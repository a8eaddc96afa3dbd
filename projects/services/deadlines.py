"""The project deadlines a course starts with: group registration, proposal slides and paper reviews."""

from datetime import date, datetime, time, timedelta

from courses.models import Course, Deadline
from projects.models import GROUPS_DEADLINE, REVIEW_DEADLINE, SLIDES_DEADLINE


def ensure_project_deadlines(*, course: Course, friday: date) -> list[Deadline]:
    """The course's default project deadlines for the week ending ``friday``, in the course's zone: groups register
    by Thursday 11:59 pm, slides and paper reviews are due Friday 1:00 pm. Existing deadlines are left as they are."""
    thursday_night = datetime.combine(friday - timedelta(days=1), time(23, 59), tzinfo=course.tz)
    friday_one_pm = datetime.combine(friday, time(13, 0), tzinfo=course.tz)
    defaults = [
        (GROUPS_DEADLINE, "Final project: group registration (for prize eligibility)", thursday_night),
        (SLIDES_DEADLINE, "Final project: proposal slides", friday_one_pm),
        (REVIEW_DEADLINE, "Final project: paper review", friday_one_pm),
    ]
    return [
        Deadline.objects.get_or_create(course=course, key=key, defaults={"title": title, "due_at": due})[0]
        for key, title, due in defaults
    ]
