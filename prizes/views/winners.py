"""The public winners page of a course, outside any sign-in: confirmed winners by public name only."""

from django.shortcuts import get_object_or_404, render

from courses.models import Course
from courses.permissions import public_view
from prizes.selectors.winners import public_winners


@public_view
def winners(request, course_slug: str):
    course = get_object_or_404(Course, slug=course_slug)
    return render(request, "prizes/winners.html", {"course": course, "prizes": public_winners(course)})
