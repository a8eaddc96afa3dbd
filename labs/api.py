"""The token API for notebooks: submit an artifact, read her own submissions and results. Nothing else."""

from functools import wraps

from django.conf import settings
from django.http import JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from courses.models import Role
from labs import services
from labs.models import Lab, Submission
from labs.presenters import submission_json
from labs.uploads import UploadRefused, accept_upload, open_upload


def api_error(status: int, code: str, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, **extra}}, status=status)


def token_required(view):
    """Authenticate with `Authorization: Bearer <token>`; the token can only act for its own student."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return api_error(401, "no_token", "Send your personal API token as 'Authorization: Bearer <token>'.")
        token = services.authenticate_token(key.strip())
        if token is None:
            return api_error(401, "bad_token", _bad_token_message(key.strip()))
        if token.member.role != Role.STUDENT:
            return api_error(403, "not_a_student", "Only students' tokens can use the API.")
        request.token = token
        request.member = token.member
        return view(request, *args, **kwargs)

    wrapped.access_rule = ("token", ())
    return csrf_exempt(wrapped)


def _bad_token_message(key: str) -> str:
    """Where to get a working token: her course's API tokens page when the key is one of hers that lapsed."""
    lapsed = services.lapsed_token(key)
    if lapsed is None:
        return (
            "This token is unknown: check that you pasted all of it, or create a new one on the API tokens page "
            f"of your course (its Labs page, then 'API tokens', at {settings.SITE_URL.rstrip('/')})."
        )
    if lapsed.revoked_at is None and lapsed.expires_at > timezone.now():
        return "This token's account is closed; ask the course staff."
    page = settings.SITE_URL.rstrip("/") + reverse("labs:tokens", args=[lapsed.member.course.slug])
    state = "was revoked" if lapsed.revoked_at else "has expired"
    return f"This token {state}; create a new one at {page}"


def allow(*methods: str):
    """Like require_http_methods, but the refusal is a JSON error as the API's document says."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.method not in methods:
                response = api_error(405, "method_not_allowed", f"Use {' or '.join(methods)} here.")
                response["Allow"] = ", ".join(methods)
                return response
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def _lab_for(request, lab_slug: str) -> Lab | None:
    return (
        Lab.objects.select_related("course", "deadline", "dataset")
        .filter(course=request.member.course, slug=lab_slug)
        .first()
    )


@token_required
@allow("GET", "POST")
def submissions(request, lab_slug: str):
    lab = _lab_for(request, lab_slug)
    if lab is None:
        return api_error(404, "no_such_lab", f"There is no lab {lab_slug!r} in {request.member.course.name}.")
    if request.method == "GET":
        rows = (
            Submission.objects.filter(lab=lab, member=request.member)
            .select_related("lab__course")
            .prefetch_related("evaluations")[:200]
        )
        return JsonResponse({"submissions": [submission_json(s) for s in rows]})
    return _submit(request, lab)


def _submit(request, lab: Lab):
    try:
        handler = open_upload(request, lab=lab, member=request.member)
        submission = accept_upload(request, lab=lab, member=request.member, handler=handler, via_api=True)
    except UploadRefused as exc:
        response = api_error(exc.status, exc.code, exc.message)
        if exc.retry_after:
            response["Retry-After"] = str(exc.retry_after)
        return response
    body = submission_json(submission)
    if submission.late:
        body["warning"] = "Accepted as late."
    response = JsonResponse(body, status=201)
    response["Location"] = reverse("api:submission", kwargs={"pk": submission.pk})
    return response


@token_required
@allow("GET")
def submission_detail(request, pk: int):
    submission = (
        Submission.objects.filter(pk=pk, member=request.member)
        .select_related("lab__course")
        .prefetch_related("evaluations")
        .first()
    )
    if submission is None:
        return api_error(404, "no_such_submission", "You have no submission with that number.")
    return JsonResponse(submission_json(submission, detail=True))


def openapi(request):
    """The OpenAPI document of the token API."""
    from labs.openapi import document

    return JsonResponse(document(request.build_absolute_uri("/")), json_dumps_params={"indent": 1})


openapi.access_rule = ("public", ())
