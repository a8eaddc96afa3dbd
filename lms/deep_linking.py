"""Deep linking: the course's staff, from the LMS's content-item selection, place a lab or the final project in an
LMS module.

The LMS launches the tool with an ``LtiDeepLinkingRequest`` (checked like any launch by ``lms.launch``). Only the
LMS's instructors and TAs get the selection page; it lists the grade columns of the deployment's course. The choice
goes back as an ``LtiDeepLinkingResponse``: a JWT signed with the registration's tool key (the LMS checks it with the
tool's JWKS) holding one ``ltiResourceLink`` whose custom parameter names the lab (or the project) and its line item,
tagged like the grade sync's, so the sync finds that column instead of making another. A later launch of the link
lands on what it names (``lms.launch._landing``).

The selection's launch is kept in the cache by pylti1p3 under its launch id, and that id is kept in the session of
the browser that made the launch: only that browser can answer it, and only once.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from pylti1p3.contrib.django import DjangoMessageLaunch
from pylti1p3.contrib.django.launch_data_storage.cache import DjangoCacheDataStorage
from pylti1p3.deep_link_resource import DeepLinkResource
from pylti1p3.exception import LtiException

from courses import audit
from courses.models import STAFF_ROLES
from courses.permissions import signed_message_view
from lms.grades import PROJECT_KEY, column_line_item, grade_columns
from lms.identities import ROLES_CLAIM, role_from_lms
from lms.models import Deployment
from lms.tool import DatabaseToolConf

SESSION_KEY = "lms_deep_link_launches"
KEPT_LAUNCHES = 5
ONLY_STAFF = "Only the course's instructors and TAs place its labs in the LMS."
EXPIRED = "This selection is no longer open. Start again from the LMS."


def custom_parameters(key: str) -> dict[str, str]:
    """What a placed link names, as the custom parameters ``lms.launch._landing`` reads."""
    if key == PROJECT_KEY:
        return {"project": "final"}
    return {"lab": key.removeprefix("lab:")}


def _choices(course) -> list[tuple[str, str]]:
    return list(grade_columns(course).items())


def selection(request, *, message, deployment: Deployment, claims: dict, refused):
    """The selection page of a deep-linking launch, for the LMS's staff only."""
    if role_from_lms(claims.get(ROLES_CLAIM) or []) not in STAFF_ROLES:
        return refused(request, ONLY_STAFF, status=403)
    launch_id = message.get_launch_id()
    kept = dict(request.session.get(SESSION_KEY) or {})
    kept[launch_id] = deployment.pk
    request.session[SESSION_KEY] = dict(list(kept.items())[-KEPT_LAUNCHES:])
    return _selection_page(request, course=deployment.course, launch_id=launch_id)


def _selection_page(request, *, course, launch_id: str, error: str = "", status: int = 200):
    context = {"course": course, "choices": _choices(course), "launch_id": launch_id, "error": error}
    return render(request, "lms/deep_link.html", context, status=status)


def _refused(request, reason: str, status: int = 400):
    return render(request, "lms/launch_refused.html", {"reason": reason}, status=status)


@signed_message_view
# Answered from the LMS's frame, where the CSRF cookie of this site is not sent; the launch id, a secret of this
# session's own launch that is good for one answer, is the proof instead.
@csrf_exempt
@require_POST
def choose(request):
    """The chosen lab or project, sent back to the LMS as a signed deep-linking response."""
    launch_id = request.POST.get("launch_id", "")
    kept = dict(request.session.get(SESSION_KEY) or {})
    if launch_id not in kept:
        return _refused(request, EXPIRED)
    deployment = Deployment.objects.select_related("course").filter(pk=kept[launch_id]).first()
    try:
        message = DjangoMessageLaunch.from_cache(
            launch_id, request, DatabaseToolConf(), launch_data_storage=DjangoCacheDataStorage()
        )
    except LtiException:
        message = None
    if deployment is None or message is None or not message.is_deep_link_launch():
        return _refused(request, EXPIRED)
    course = deployment.course
    columns = grade_columns(course)
    key = request.POST.get("item", "")
    if key not in columns:
        return _selection_page(
            request, course=course, launch_id=launch_id, error="Choose one of the listed items.", status=400
        )
    label = columns[key]
    resource = (
        DeepLinkResource()
        .set_url(request.build_absolute_uri(reverse("lms:launch")))
        .set_title(label)
        .set_custom_params(custom_parameters(key))
        .set_lineitem(column_line_item(key, label))
    )
    deep_link = message.get_deep_link()
    token = deep_link.get_response_jwt([resource])
    return_url = message.get_launch_data()["https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"][
        "deep_link_return_url"
    ]
    del kept[launch_id]
    request.session[SESSION_KEY] = kept
    audit.record(
        course=course,
        actor=None,
        action="lms.deep_link",
        target=label,
        after={"key": key, "deployment": deployment.deployment_id, "return_url": return_url[:300]},
    )
    response = render(request, "lms/deep_link_return.html", {"return_url": return_url, "token": token})
    # The form goes to the LMS's return address: the policy lets this one page post there.
    parts = urlsplit(return_url)
    response.headers["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'", f"form-action 'self' {parts.scheme}://{parts.netloc}"
    )
    return response
