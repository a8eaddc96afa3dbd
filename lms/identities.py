"""Who an LMS's person is here: the LMS's roles in our words, and the account a launch signs in.

The LMS names a person by its ``sub``, stable per registration. A first launch links that ``sub`` to an account by
e-mail only when the account is a student of the deployment's course and holds no staff role anywhere: an LMS
administrator can give any user any address, and must not thereby open a TA's, an instructor's or a superuser's
account. Those sign in with their passwords; an instructor's roster sync may link them (lms/roster.py).
"""

import csv
import io

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from courses.models import STAFF_ROLES, Membership, Role
from courses.roster import import_roster
from lms.models import Deployment, LmsIdentity, Registration

LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
ROLES_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/roles"


class LaunchRefused(Exception):
    """The LMS vouched for her, but no account here may be opened for her; the message says what to do."""


def role_from_lms(roles: list[str]) -> str | None:
    """Our role for the LMS's context roles (full URIs, or the short names NRPS may send); None: none of ours.

    A teaching assistant is an Instructor sub-role in LIS, so it is checked first."""
    names = {role.removeprefix(LIS + "membership#").removeprefix(LIS + "membership/") for role in roles}
    if any(name.startswith("Instructor#TeachingAssistant") or name == "TeachingAssistant" for name in names):
        return Role.TA
    if "Instructor" in names or "Administrator" in names:
        return Role.INSTRUCTOR
    if "Learner" in names or any(name.startswith("Learner#") for name in names):
        return Role.STUDENT
    return None


def roster_csv(rows: list[tuple[str, str, str, bool]]) -> bytes:
    """Rows for ``courses.roster.import_roster``: (email, name, role, registered)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["email", "name", "role", "registered"])
    for email, name, role, registered in rows:
        writer.writerow([email, name, role, "yes" if registered else "no"])
    return out.getvalue().encode()


def holds_staff_role(user) -> bool:
    return user.is_superuser or user.is_staff or Membership.objects.filter(user=user, role__in=STAFF_ROLES).exists()


def link(*, registration: Registration, subject: str, user) -> bool:
    """Links the LMS's ``sub`` to the account; False when either is already linked to another."""
    try:
        with transaction.atomic():
            LmsIdentity.objects.get_or_create(registration=registration, subject=subject, defaults={"user": user})
    except IntegrityError:
        return False
    return LmsIdentity.objects.filter(registration=registration, subject=subject, user=user).exists()


STAFF_SIGN_IN = (
    "Your LMS says you teach this course. Sign in to this site with your password; an instructor's roster sync "
    "links your LMS account for later launches."
)
NOT_LINKABLE = (
    "Your LMS account could not be matched to an account on this site. Ask your course staff to check the e-mail "
    "address on the roster."
)


def account_for_launch(*, deployment: Deployment, claims: dict):
    """The account this launch signs in, linking it (or enrolling a new learner in the course) on the first launch.

    A learner the course does not know yet becomes a student of the deployment's course through the roster import,
    with its rules and its audit; nothing of any other course changes.
    """
    registration, course = deployment.registration, deployment.course
    subject = claims["sub"]
    identity = LmsIdentity.objects.select_related("user").filter(registration=registration, subject=subject).first()
    if identity is not None:
        return identity.user
    role = role_from_lms(claims.get(ROLES_CLAIM) or [])
    if role in STAFF_ROLES:
        raise LaunchRefused(STAFF_SIGN_IN)
    if role != Role.STUDENT:
        raise LaunchRefused("Only the course's learners and staff open it from the LMS.")
    email = (claims.get("email") or "").strip().lower()
    if not email:
        raise LaunchRefused(NOT_LINKABLE)
    same_address = list(get_user_model().objects.filter(email__iexact=email))
    if len(same_address) > 1 or (same_address and holds_staff_role(same_address[0])):
        raise LaunchRefused(NOT_LINKABLE)
    if not same_address or not Membership.objects.filter(user=same_address[0], course=course).exists():
        name = (claims.get("name") or email).strip()[:150]
        import_roster(course=course, data=roster_csv([(email, name, Role.STUDENT, True)]), actor=None)
        same_address = list(get_user_model().objects.filter(email__iexact=email))
    user = same_address[0]
    if not link(registration=registration, subject=subject, user=user):
        raise LaunchRefused(NOT_LINKABLE)
    return user
