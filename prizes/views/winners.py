"""The public winners pages, outside any sign-in: a course's confirmed winners by public name only, and their index."""

from django.shortcuts import get_object_or_404, render

from courses.models import Course
from courses.permissions import public_view
from prizes.selectors.winners import courses_with_winners, public_winners


@public_view
def winners(request, course_slug: str):
    course = get_object_or_404(Course, slug=course_slug)
    return render(request, "prizes/winners.html", {"course": course, "prizes": public_winners(course)})


@public_view
def index(request):
    """Every course that has published winners, with its prizes, each leading to the course's winners page."""
    courses = [(course, public_winners(course)) for course in courses_with_winners()]
    return render(request, "prizes/winners_index.html", {"courses": courses})
