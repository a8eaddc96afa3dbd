"""The LTI 1.3 entry points: the LMS's login initiation, the launch itself, and the tool's public keys.

pylti1p3 does the protocol (state, nonce, the id_token's signature against the LMS's JWKS, issuer, client id,
deployment); added here: a nonce is good for one launch only (pylti1p3 checks that it was issued, not that it is
unused), a launch opens the course its deployment belongs to and nothing else, and the person is the one the LMS
names by its ``sub``. A deep-linking launch (the LMS's content-item selection) goes on to ``lms.deep_linking``.
"""

import logging
from urllib.parse import parse_qs, urlencode, urlsplit

from django.contrib.auth import login
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from pylti1p3.contrib.django import DjangoMessageLaunch, DjangoOIDCLogin
from pylti1p3.contrib.django.launch_data_storage.cache import DjangoCacheDataStorage
from pylti1p3.exception import LtiException, OIDCException

from courses.permissions import public_view, signed_message_view
from lms import deep_linking, identities
from lms.models import Deployment, Registration, Section, UsedNonce
from lms.tool import DatabaseToolConf, tool_jwks

LOGGER = logging.getLogger(__name__)

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
# Marks the session of a person who came in through an LMS: its cookie must cross sites, its pages may be framed.
FRAME_ORIGIN_KEY = "lms_frame_origin"
# The login initiation's parameters, kept by the launch's state for as long as pylti1p3's state cookie lives: a launch
# whose browser did not keep that cookie is offered the same login in a new window.
LOGIN_PARAMS = ("iss", "login_hint", "target_link_uri", "lti_message_hint", "client_id", "lti_deployment_id")
LOGIN_RECORD_SECONDS = 5 * 60
STATE_COOKIE_PREFIX = "lti1p3-"  # pylti1p3's cookie for a state: lti1p3-<state>, whose value is the state
COOKIE_BLOCKED = (
    "Your browser did not keep this site's cookie inside the LMS's page (third-party cookies are blocked there), "
    "so this launch could not be checked. Open it in a new window, where the sign-in works."
)


def _refused(request, reason: str, status: int = 400, *, new_window_url: str = "", frame_origin: str = ""):
    response = render(
        request, "lms/launch_refused.html", {"reason": reason, "new_window_url": new_window_url}, status=status
    )
    if frame_origin:
        response.lms_frame_origin = frame_origin  # lms.middleware lets that LMS, and it alone, frame this page
    return response


def _login_record_key(state: str) -> str:
    return f"lms-login:{state}"


def _remember_login(request, response) -> None:
    """Keeps, under the state the login just made, its parameters and the registered origin of its LMS."""
    state = parse_qs(urlsplit(response.get("Location", "")).query).get("state", [""])[0]
    data = request.POST if request.method == "POST" else request.GET
    params = {name: data[name] for name in LOGIN_PARAMS if data.get(name)}
    registration = Registration.objects.filter(issuer=params.get("iss"), client_id=params.get("client_id")).first()
    if state and registration is not None:
        record = {"params": params, "frame_origin": registration.frame_origin}
        cache.set(_login_record_key(state), record, LOGIN_RECORD_SECONDS)


def _refused_without_cookie(request):
    """The refusal of a launch whose browser did not send back the state cookie its login set, or None when the
    cookie came back (the launch failed for another reason) or the login is not known. The page may be framed by
    the LMS the login was for, and links to the same login in a new window."""
    state = request.POST.get("state", "")
    if not state or request.COOKIES.get(STATE_COOKIE_PREFIX + state) == state:
        return None
    record = cache.get(_login_record_key(state))
    if record is None:
        return None
    new_window_url = reverse("lms:login") + "?" + urlencode(record["params"])
    return _refused(request, COOKIE_BLOCKED, new_window_url=new_window_url, frame_origin=record["frame_origin"])


@signed_message_view
@csrf_exempt  # The LMS's browser form posts here from another site, with no token of ours (LTI 1.3, 5.1.1.1).
@require_http_methods(["GET", "POST"])
def login_initiation(request):
    """Step one of a launch: the LMS names itself and the person; she is sent to the LMS to sign the launch."""
    try:
        oidc = DjangoOIDCLogin(request, DatabaseToolConf(), launch_data_storage=DjangoCacheDataStorage())
        response = oidc.redirect(request.build_absolute_uri(reverse("lms:launch")))
    except (LtiException, OIDCException) as exc:
        LOGGER.warning(
            "LTI login initiation refused: %s (iss=%r)", exc, request.GET.get("iss") or request.POST.get("iss")
        )
        return _refused(request, "This LMS is not registered with this site. Ask your course staff to register it.")
    _remember_login(request, response)
    return response


def _consume_nonce(*, issuer: str, nonce: str) -> bool:
    try:
        with transaction.atomic():
            UsedNonce.objects.create(issuer=issuer, nonce=nonce)
    except IntegrityError:
        return False
    return True


@signed_message_view
@csrf_exempt  # The signed id_token and the state cookie are the launch's proof of origin, not a CSRF token.
@require_POST
def launch(request):
    """Step two: the LMS posts the signed launch; she lands on her course (or the lab the link names), signed in."""
    try:
        # Over HTTPS the constructor already wants the cookie the login initiation set; a browser that did not keep
        # it (third-party cookies blocked in the LMS's frame) is refused here, not with a server error.
        message = DjangoMessageLaunch(request, DatabaseToolConf(), launch_data_storage=DjangoCacheDataStorage())
        claims = message.get_launch_data()
    except LtiException as exc:
        LOGGER.warning("LTI launch refused: %s", exc)
        return _refused_without_cookie(request) or _refused(
            request, "This launch could not be verified. Open the link in your LMS again."
        )
    deep_link = message.is_deep_link_launch()
    if not deep_link and not message.is_resource_launch():
        return _refused(request, "This kind of LTI message is not supported; use a plain link to the course.")
    if not _consume_nonce(issuer=claims["iss"], nonce=claims["nonce"]):
        LOGGER.warning("LTI launch replayed: nonce %s of %s", claims["nonce"], claims["iss"])
        return _refused(request, "This launch was already used. Open the link in your LMS again.")

    deployment = Deployment.objects.select_related("registration", "course").get(
        registration__issuer=claims["iss"],
        registration__client_id=message.get_client_id(),
        deployment_id=claims[CLAIM + "deployment_id"],
    )
    context = claims.get(CLAIM + "context") or {}
    if context.get("id"):
        _record_section(deployment=deployment, context=context, claims=claims)
    if deep_link:
        request.session[FRAME_ORIGIN_KEY] = deployment.registration.frame_origin
        return deep_linking.selection(request, message=message, deployment=deployment, claims=claims, refused=_refused)
    try:
        user = identities.account_for_launch(deployment=deployment, claims=claims)
    except identities.LaunchRefused as exc:
        return _refused(request, str(exc), status=403)
    login(request, user, backend="lms.backends.LaunchBackend")
    request.session[FRAME_ORIGIN_KEY] = deployment.registration.frame_origin
    return redirect(_landing(deployment=deployment, claims=claims))


def _record_section(*, deployment: Deployment, context: dict, claims: dict) -> None:
    nrps = claims.get(NRPS_CLAIM) or {}
    ags = claims.get(AGS_CLAIM) or {}
    Section.objects.update_or_create(
        deployment=deployment,
        context_id=context["id"],
        defaults={
            "title": (context.get("title") or context.get("label") or "")[:255],
            "memberships_url": nrps.get("context_memberships_url", ""),
            "lineitems_url": ags.get("lineitems", ""),
            "ags_scopes": list(ags.get("scope", [])),
            "last_launch_at": timezone.now(),
        },
    )


def _landing(*, deployment: Deployment, claims: dict) -> str:
    """The course of the deployment, or one of its labs when the link's custom parameter ``lab`` names one. A link
    can name a lab (or the final project) but never a course: that comes from the deployment alone."""
    course = deployment.course
    custom = claims.get(CLAIM + "custom") or {}
    lab_slug = str(custom.get("lab", "")).strip()
    if lab_slug and course.labs.filter(slug=lab_slug).exists():
        return reverse("labs:lab", kwargs={"course_slug": course.slug, "lab_slug": lab_slug})
    if custom.get("project"):
        return reverse("projects:home", kwargs={"course_slug": course.slug})
    return reverse("courses:dashboard", kwargs={"course_slug": course.slug})


@public_view
@require_GET
def jwks(request):
    """The tool's public keys; the LMS checks the tool's service requests with them."""
    return JsonResponse(tool_jwks())
