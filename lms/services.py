"""Registering an LMS deployment for a course: only an instructor links her course to an LMS."""

from urllib.parse import urlsplit

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from courses import audit
from courses.models import Course, Role
from courses.roles import role_of_actor
from lms import keyring
from lms.models import Deployment, Registration
from lms.tool import new_key_pair


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"{url!r} is not a web address.")
    return f"{parts.scheme}://{parts.netloc}"


@transaction.atomic
def register_deployment(
    *,
    course: Course,
    actor,
    issuer: str,
    client_id: str,
    deployment_id: str,
    auth_login_url: str,
    auth_token_url: str,
    key_set_url: str,
    frame_origin: str,
) -> Deployment:
    """Links a deployment of an LMS to ``course``. The LMS's registration (issuer and client id) is shared by every
    course of that LMS; a course that finds it registered with other endpoints is refused rather than changing them
    for the others, and a deployment already linked to another course is never moved."""
    if role_of_actor(course=course, actor=actor) not in (None, Role.INSTRUCTOR):
        raise PermissionDenied("Only an instructor links the course to an LMS.")
    endpoints = {
        "auth_login_url": auth_login_url,
        "auth_token_url": auth_token_url,
        "key_set_url": key_set_url,
        "frame_origin": origin_of(frame_origin),
    }
    registration = Registration.objects.select_for_update().filter(issuer=issuer, client_id=client_id).first()
    if registration is None:
        private_key, kid = new_key_pair()
        registration = Registration.objects.create(
            issuer=issuer, client_id=client_id, tool_private_key=keyring.seal(private_key), tool_kid=kid, **endpoints
        )
    elif any(getattr(registration, name) != value for name, value in endpoints.items()):
        raise ValidationError(
            "This LMS client is already registered with other addresses; ask the platform operator to change them."
        )
    existing = Deployment.objects.filter(registration=registration, deployment_id=deployment_id).first()
    if existing is not None:
        if existing.course_id != course.pk:
            raise ValidationError("This deployment is linked to another course; the LMS needs a deployment per course.")
        return existing
    deployment = Deployment.objects.create(
        registration=registration, deployment_id=deployment_id, course=course, created_by=actor
    )
    audit.record(
        course=course,
        actor=actor,
        action="lms.deployment.add",
        target=f"{issuer} {client_id} {deployment_id}",
        after={"issuer": issuer, "client_id": client_id, "deployment_id": deployment_id, **endpoints},
    )
    return deployment
