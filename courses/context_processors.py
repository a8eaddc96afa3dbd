"""Navigation by role: the courses the viewer belongs to and her role in the current one; the sign-in choices."""

from django.conf import settings

from courses.institution import institution_name, is_configured
from courses.models import Membership


def navigation(request):
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    memberships = list(Membership.objects.filter(user=request.user).select_related("course"))
    member = getattr(request, "member", None)
    return {
        "my_memberships": memberships,
        "current_course": getattr(request, "course", None),
        "current_member": member,
        "is_course_staff": bool(member and member.is_staff_role),
    }


def institution_sign_in(request):
    """The institution's name for the "Sign in with ..." button, when institution sign-in is set up, and whether
    students have local passwords (else only judges and staff are offered a password reset)."""
    return {
        "institution_sign_in": institution_name() if is_configured() else "",
        "student_passwords": getattr(settings, "LOCAL_PASSWORDS_FOR_STUDENTS", True),
    }
