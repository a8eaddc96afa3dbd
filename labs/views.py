"""Lab pages: the lab list, a lab's page with upload and live status, a submission, leaderboards, tokens, staff queue."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from courses.confirm import ask, confirmed
from courses.models import Role
from courses.permissions import course_view, staff_view
from courses.selectors import deadline_view
from grader.registry import get_lab
from labs import basemodels, selectors, services
from labs.forms import BaseModelForm, ReasonForm, TokenForm
from labs.graderkit import FILENAME as GRADER_FILENAME
from labs.graderkit import grader_zipapp
from labs.models import ACTIVE_STATES, ApiToken, EvaluationStatus, Lab, Submission
from labs.presenters import public_result, result_extras
from labs.uploads import MAX_DESCRIPTION, UploadRefused, accept_upload, open_upload

LAB_ROLES = (Role.STUDENT, Role.TA, Role.INSTRUCTOR)


def _lab(request, lab_slug: str) -> Lab:
    return get_object_or_404(
        Lab.objects.select_related("deadline", "dataset", "course"), course=request.course, slug=lab_slug
    )


@course_view(*LAB_ROLES)
def index(request):
    labs = list(request.course.labs.select_related("deadline"))
    member = request.member
    rows = []
    for lab in labs:
        due = deadline_view(deadline=lab.deadline, member=member if member.role == Role.STUDENT else None)
        rows.append({"lab": lab, "due": due})
    return render(request, "labs/index.html", {"course": request.course, "rows": rows})


def _submissions_context(request, lab: Lab) -> dict:
    member = request.member
    submissions = selectors.her_submissions(lab=lab, member=member)
    rows = []
    active = False
    for submission in submissions:
        evaluation = selectors.latest_evaluation(submission)
        position = selectors.queue_position(evaluation) if evaluation else None
        if evaluation and evaluation.status in ACTIVE_STATES:
            active = True
        rows.append({"submission": submission, "evaluation": evaluation, "position": position})
    return {"course": request.course, "lab": lab, "rows": rows, "active": active}


def _note_key(lab: Lab) -> str:
    return f"upload-note-{lab.pk}"


@course_view(*LAB_ROLES)
def lab_page(request, lab_slug: str):
    lab = _lab(request, lab_slug)
    member = request.member
    context = {
        "course": request.course,
        "lab": lab,
        "artifact_files": get_lab(lab.kind).artifact_files,
        "site_url": settings.SITE_URL.rstrip("/"),
    }
    context["due"] = deadline_view(deadline=lab.deadline, member=member if member.role == Role.STUDENT else None)
    if member.role == Role.STUDENT:
        context.update(_submissions_context(request, lab))
        context["decision"] = services.may_submit(lab=lab, member=member, at=request.received_at)
        context["used_today"] = services.submissions_counted_today(lab=lab, member=member, at=request.received_at)
        context["note"] = request.session.pop(_note_key(lab), "")
    return render(request, "labs/lab.html", context)


@course_view(Role.STUDENT)
def submissions_partial(request, lab_slug: str):
    lab = _lab(request, lab_slug)
    return render(request, "labs/_submissions.html", _submissions_context(request, lab))


@csrf_exempt
def upload(request, course_slug: str, lab_slug: str):
    """The web form's upload: the size- and time-bounded handler is installed before the body is read."""
    return _upload_checked(request, course_slug=course_slug, lab_slug=lab_slug)


@course_view(Role.STUDENT)
def _upload_checked(request, lab_slug: str):
    lab = _lab(request, lab_slug)
    if request.method != "POST":
        return redirect("labs:lab", course_slug=request.course.slug, lab_slug=lab.slug)
    try:
        handler = open_upload(request, lab=lab, member=request.member)
    except UploadRefused as exc:
        messages.error(request, exc.message)
        return redirect("labs:lab", course_slug=request.course.slug, lab_slug=lab.slug)
    return _upload_body(request, lab, handler)


@csrf_protect
def _upload_body(request, lab: Lab, handler):
    try:
        submission = accept_upload(request, lab=lab, member=request.member, handler=handler, via_api=False)
    except UploadRefused as exc:
        messages.error(request, exc.message)
        # Her note comes back in the form after the redirect, so fixing a file does not cost her its words. Only a
        # body already parsed is read: parsing it again here would bypass the bounded handler that refused it.
        if hasattr(request, "_post"):
            request.session[_note_key(lab)] = request.POST.get("description", "")[:MAX_DESCRIPTION]
    else:
        note = " (accepted as late)" if submission.late else ""
        # The message stays on the page while its grading moves on, so it says nothing of a state that will change.
        messages.success(request, f"Submission #{submission.number} accepted{note}. Its grading shows below.")
    return redirect("labs:lab", course_slug=request.course.slug, lab_slug=lab.slug)


upload.access_rule = ("course", (Role.STUDENT,))


def _visible_submission(request, lab: Lab, pk: int) -> Submission:
    submission = get_object_or_404(Submission.objects.select_related("member__user", "lab"), pk=pk, lab=lab)
    if submission.member_id != request.member.pk and not request.member.is_staff_role:
        raise Http404
    return submission


@course_view(*LAB_ROLES)
def submission_detail(request, lab_slug: str, pk: int):
    lab = _lab(request, lab_slug)
    submission = _visible_submission(request, lab, pk)
    evaluations = list(submission.evaluations.order_by("-id"))
    current = next(
        (e for e in evaluations if e.status == EvaluationStatus.SUCCEEDED), evaluations[0] if evaluations else None
    )
    private_visible = selectors.private_visible_to(lab, request.member)
    context = {
        "course": request.course,
        "lab": lab,
        "submission": submission,
        "evaluations": evaluations,
        "current": current,
        "private_visible": private_visible,
        "is_owner": submission.member_id == request.member.pk,
        "position": selectors.queue_position(evaluations[0]) if evaluations else None,
    }
    if current and current.status == EvaluationStatus.SUCCEEDED:
        context.update(result_extras(lab, current))
    return render(request, "labs/submission.html", context)


@course_view(*LAB_ROLES)
def artifact_file(request, lab_slug: str, pk: int, name: str):
    """Her own artifact's files (or any, for staff), as attachments."""
    lab = _lab(request, lab_slug)
    submission = _visible_submission(request, lab, pk)
    item = next((f for f in submission.files if f["name"] == name), None)
    if item is None:
        raise Http404
    response = FileResponse(
        default_storage.open(item["key"], "rb"),
        as_attachment=True,
        filename=name,
        content_type="application/octet-stream",
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@course_view(*LAB_ROLES)
def result_file(request, lab_slug: str, pk: int):
    """Her result.json of the submission's current succeeded evaluation: the public split only, for her or staff."""
    lab = _lab(request, lab_slug)
    submission = _visible_submission(request, lab, pk)
    evaluation = submission.evaluations.filter(status=EvaluationStatus.SUCCEEDED).order_by("-id").first()
    if evaluation is None:
        raise Http404("This submission has no successful evaluation yet.")
    response = JsonResponse(public_result(evaluation), json_dumps_params={"indent": 2, "sort_keys": True})
    name = f"{lab.slug}-submission-{submission.number}-result.json"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@course_view(*LAB_ROLES)
def leaderboard(request, lab_slug: str):
    lab = _lab(request, lab_slug)
    split = request.GET.get("split", "public")
    try:
        page = int(request.GET.get("page", "1"))
    except ValueError:
        page = 1
    board = selectors.leaderboard_for(lab=lab, split=split, viewer=request.member, page=page)
    context = {"course": request.course, "lab": lab, "board": board, "columns": selectors.leaderboard_columns(lab)}
    if request.member.is_staff_role and lab.private_released_at is None:
        # The button is shown as it would answer: refused, and why, until the one deadline rule allows it.
        context["release_refusal"] = services.release_refusal(lab, at=timezone.now())
    return render(request, "labs/leaderboard.html", context)


@course_view(Role.STUDENT)
def tokens(request):
    member = request.member
    form = TokenForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        try:
            _, new_key = services.create_token(
                member=member, name=form.cleaned_data["name"], days=form.cleaned_data["days"]
            )
        except ValidationError as exc:
            form.add_error(None, exc.messages[0])
    return render(
        request,
        "labs/tokens.html",
        {
            "course": request.course,
            "form": form,
            "new_key": new_key,
            "tokens": ApiToken.objects.filter(member=member),
            "site_url": settings.SITE_URL.rstrip("/"),
            # Each lab's own address and files: an example a student can paste as it is.
            "labs": [(lab, get_lab(lab.kind).artifact_files) for lab in request.course.labs.all()],
        },
    )


@course_view(*LAB_ROLES)
def grader_download(request):
    """The grader's checks as one file, for `python grader.pyz check --lab L DIR` before uploading."""
    response = HttpResponse(grader_zipapp(), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{GRADER_FILENAME}"'
    return response


@course_view(Role.STUDENT)
@require_POST
def token_revoke(request, pk: int):
    token = get_object_or_404(ApiToken, pk=pk, member=request.member)
    if not confirmed(request):
        return ask(
            request,
            title=f"Revoke the token {token.name}?",
            consequences=[
                "A notebook that uses it can no longer submit or read your results.",
                "A revoked token cannot be turned back on; you can create a new one.",
            ],
            button=f"Revoke {token.name}",
            cancel_url=reverse("labs:tokens", args=[request.course.slug]),
        )
    services.revoke_token(token=token)
    messages.success(request, f"Token {token.name} revoked.")
    return redirect("labs:tokens", course_slug=request.course.slug)


@staff_view
@require_POST
def release(request, lab_slug: str):
    lab = _lab(request, lab_slug)
    try:
        services.release_private(lab=lab, actor=request.user)
        messages.success(request, f"Private scores of {lab.title} released.")
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    return redirect("labs:leaderboard", course_slug=request.course.slug, lab_slug=lab.slug)


@staff_view
@require_POST
def withdraw_release(request, lab_slug: str):
    lab = _lab(request, lab_slug)
    form = ReasonForm(request.POST)
    try:
        services.withdraw_release(
            lab=lab, actor=request.user, reason=form.cleaned_data["reason"] if form.is_valid() else ""
        )
        messages.success(request, f"The release of {lab.title}'s private scores is withdrawn.")
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    return redirect("labs:leaderboard", course_slug=request.course.slug, lab_slug=lab.slug)


@staff_view
@require_POST
def freeze(request, lab_slug: str):
    lab = _lab(request, lab_slug)
    frozen = request.POST.get("frozen") == "1"
    try:
        services.set_frozen(lab=lab, actor=request.user, frozen=frozen)
        messages.success(request, f"Leaderboard {'frozen' if frozen else 'unfrozen'}.")
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    return redirect("labs:leaderboard", course_slug=request.course.slug, lab_slug=lab.slug)


@staff_view
def base_model(request, lab_slug: str):
    """Lab 3: the base model its adapters must fit; staff register the provisioned folder's config.json."""
    lab = _lab(request, lab_slug)
    if not get_lab(lab.kind).needs_base_model:
        raise Http404("This lab grades no adapter on a base model.")
    form = BaseModelForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["config"]
        try:
            if upload.size > basemodels.MAX_CONFIG_BYTES:
                raise ValidationError(f"config.json is {upload.size} bytes; a model config is far smaller.")
            base = basemodels.register_base_model(
                lab=lab,
                actor=request.user,
                name=form.cleaned_data["name"],
                folder=form.cleaned_data["folder"],
                config_bytes=upload.read(),
            )
        except ValidationError as exc:
            form.add_error("config", exc.messages[0])
        else:
            messages.success(request, f"{lab.title} now grades adapters on {base.name} ({base.model_type}).")
            return redirect("labs:base_model", course_slug=request.course.slug, lab_slug=lab.slug)
    current = basemodels.describe(lab.base_model) if lab.base_model_id else None
    return render(request, "labs/base_model.html", {"lab": lab, "form": form, "current": current})
