"""The one permission mechanism: a decorator keyed on the viewer's role in the course named by the URL."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from courses.models import STAFF_ROLES, Course, Membership, Role


def course_view(*roles: str) -> Callable:
    """Resolve ``course_slug`` and the viewer's membership; anonymous -> sign-in, wrong role -> 403.

    The view receives ``request.course`` and ``request.member``. ``roles`` empty means any member.
    """

    def decorator(view):
        @wraps(view)
        def wrapped(request, course_slug: str, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            course = get_object_or_404(Course, slug=course_slug)
            member = (
                Membership.objects.select_related("user", "course").filter(course=course, user=request.user).first()
            )
            if member is None or (roles and member.role not in roles):
                raise PermissionDenied("Your role in this course does not give access to this page.")
            request.course = course
            request.member = member
            return view(request, *args, **kwargs)

        wrapped.access_rule = ("course", tuple(roles))
        return wrapped

    return decorator


def staff_view(view):
    return course_view(*STAFF_ROLES)(view)


def student_view(view):
    return course_view(Role.STUDENT)(view)


def signed_in_view(view):
    """For pages outside any course that only need a signed-in user."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    wrapped.access_rule = ("signed_in", ())
    return wrapped


def signed_message_view(view):
    """Marks a page that another site's browser form posts to with a signed message (an LTI launch): the view checks
    the message's signature itself, so it carries neither a session nor a CSRF token."""
    view.access_rule = ("signed_message", ())
    return view


def public_view(view):
    """Marks a page that anyone may see (sign-in, public winners page)."""
    view.access_rule = ("public", ())
    return view
