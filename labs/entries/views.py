"""Entry pages: she assembles her entry; staff list a lab's entries, read one, and download its bundle."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET

from courses import audit
from courses.models import Role
from courses.permissions import course_view, staff_view
from labs import intake
from labs.entries import exports, services
from labs.entries.filetypes import INLINE_TYPES
from labs.entries.forms import EntryKitForm
from labs.entries.models import FILE_PARTS, EntryFile, LabEntry, Part
from labs.models import EvaluationStatus, Lab

FILE_CSP = "default-src 'none'; sandbox"
# The rendered notebook: no script, nothing fetched from anywhere (images are data: URLs), framed only by the site.
NOTEBOOK_CSP = "default-src 'none'; img-src data:; style-src 'none'; frame-ancestors 'self'; sandbox"
LAB_ROLES = (Role.STUDENT, Role.TA, Role.INSTRUCTOR)


def _lab(request, lab_slug: str) -> Lab:
    return get_object_or_404(Lab.objects.select_related("deadline", "course"), course=request.course, slug=lab_slug)


def _back(request, lab: Lab):
    return redirect("labs:entry", course_slug=request.course.slug, lab_slug=lab.slug)


def _visible_entry(request, lab: Lab, pk: int) -> LabEntry:
    entry = get_object_or_404(LabEntry.objects.select_related("member__user", "lab", "submission"), pk=pk, lab=lab)
    if entry.member_id != request.member.pk and not request.member.is_staff_role:
        raise Http404
    return entry


@course_view(Role.STUDENT)
def entry_page(request, lab_slug: str):
    lab = _lab(request, lab_slug)
    member = request.member
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "submission":
                try:
                    chosen = int(request.POST.get("submission", ""))
                except ValueError:
                    raise ValidationError("Pick one of your graded submissions.") from None
                services.choose_submission(lab=lab, member=member, submission_id=chosen, at=request.received_at)
            elif action == "texts":
                texts = {p: request.POST.get(p, "") for p in ("description", "discussion") if p in request.POST}
                services.set_texts(
                    lab=lab, member=member, texts=texts, title=request.POST.get("title"), at=request.received_at
                )
            elif action == "confirm":
                services.confirm_findings(lab=lab, member=member, at=request.received_at)
            else:
                raise ValidationError("Unknown action.")
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
        else:
            messages.success(request, "Your entry is saved.")
        return _back(request, lab)
    kit = services.kit_for(lab)
    entry = LabEntry.objects.filter(lab=lab, member=member).select_related("submission").first()
    graded = (
        lab.submissions.filter(member=member, evaluations__status=EvaluationStatus.SUCCEEDED)
        .distinct()
        .order_by("-number")
    )
    context = {
        "course": request.course,
        "lab": lab,
        "kit": kit,
        "entry": entry,
        "files": {item.part: item for item in entry.files.all()} if entry else {},
        "graded": graded,
        "timing": services.entry_timing(lab=lab, member=member, at=request.received_at),
        "completeness": services.completeness(entry, kit),
        "file_parts": [(p, Part(p).label) for p in FILE_PARTS if p in kit.parts],
        "text_parts": [(p, Part(p).label) for p in ("description", "discussion") if p in kit.parts],
    }
    return render(request, "labs/entry.html", context)


@csrf_exempt
def entry_upload(request, course_slug: str, lab_slug: str, part: str):
    """Her file for one part; the size-bounded handler is installed before the body is read."""
    return _upload_checked(request, course_slug=course_slug, lab_slug=lab_slug, part=part)


@course_view(Role.STUDENT)
def _upload_checked(request, lab_slug: str, part: str):
    lab = _lab(request, lab_slug)
    if request.method != "POST":
        return _back(request, lab)
    if part not in FILE_PARTS:
        raise Http404
    timing = services.entry_timing(lab=lab, member=request.member, at=request.received_at)
    if not timing.allowed:
        messages.error(request, timing.message)
        return _back(request, lab)
    kit = services.kit_for(lab)
    handler = intake.install_handler(request, max_bytes=kit.max_bytes(part) + 64 * 1024)
    return _upload_body(request, lab, part, handler)


@csrf_protect
def _upload_body(request, lab: Lab, part: str, handler):
    try:
        upload = request.FILES.get("file")
        if handler.problem == "too_large":
            limit = services.kit_for(lab).max_bytes(part) / 2**20
            raise ValidationError(f"That file is larger than the {limit:.0f} MB this part accepts.")
        if handler.problem:
            raise ValidationError("The upload took too long; try again on a steadier connection.")
        if upload is None:
            raise ValidationError("Choose a file to upload.")
        item = services.attach_file(
            lab=lab, member=request.member, part=part, upload=upload, at=request.received_at, actor=request.user
        )
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, f"{Part(part).label} saved.")
        if item.findings:
            messages.warning(request, "Your notebook holds API keys: see below, revoke them, then confirm.")
    return _back(request, lab)


entry_upload.access_rule = ("course", (Role.STUDENT,))


@course_view(*LAB_ROLES)
@require_GET
def entry_file(request, lab_slug: str, pk: int, part: str):
    entry = _visible_entry(request, _lab(request, lab_slug), pk)
    item = get_object_or_404(EntryFile, entry=entry, part=part)
    return file_response(entry, item, inline=wants_inline(request))


def wants_inline(request) -> bool:
    """``?inline=1``: the page's audio player or image asks for the file itself rather than a download."""
    return request.GET.get("inline") == "1"


def file_response(entry: LabEntry, item: EntryFile, *, inline: bool = False) -> FileResponse:
    """One part of an entry, to staff and judges alike: an attachment no browser renders or sniffs, or, for a
    recording or an image asked for ``inline``, the file under its own audio or image type, for an ``<audio>`` or
    ``<img>`` of the entry's page. Either way the strict sandboxing policy applies, so opened on its own it runs
    nothing. Anything else asked for inline (a notebook, a PDF) is not found: it has no inline form."""
    content_type = INLINE_TYPES.get(item.extension) if inline else "application/octet-stream"
    if content_type is None:
        raise Http404
    response = FileResponse(
        default_storage.open(item.key, "rb"),
        as_attachment=not inline,
        filename=f"{exports.bundle_name(entry)}-{item.part}.{item.extension}",
        content_type=content_type,
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = FILE_CSP
    response["Cache-Control"] = "private, no-store"
    return response


def entry_media(files: dict[str, EntryFile], url) -> dict:
    """What the entry's page shows of its song, plot and report: ``url(part)`` is the part's download address.

    The song plays in an audio player and the plot shows as an image, both fetched ``?inline=1``; the PDF report is
    a download link (see ``INLINE_TYPES``), with the other files.
    """
    media = {}
    for part, kind in ((Part.SONG, "audio"), (Part.PLOT, "image")):
        item = files.get(part)
        if item is not None and item.extension in INLINE_TYPES:
            media[kind] = {"item": item, "src": f"{url(part)}?inline=1", "type": INLINE_TYPES[item.extension]}
    return media


@course_view(*LAB_ROLES)
@require_GET
@xframe_options_sameorigin
def entry_notebook(request, lab_slug: str, pk: int):
    """The sanitised rendering, for the sandboxed iframe of the entry's page (no scripts may run in it)."""
    entry = _visible_entry(request, _lab(request, lab_slug), pk)
    return notebook_response(get_object_or_404(EntryFile, entry=entry, part=Part.NOTEBOOK))


def notebook_response(item: EntryFile) -> HttpResponse:
    """The notebook's sanitised rendering under the strict policy, to be framed by the site only (judges too).

    The caller marks its view ``xframe_options_sameorigin``.
    """
    if not item.rendered_key:
        raise Http404
    with default_storage.open(item.rendered_key, "rb") as handle:
        body = handle.read()
    page = b'<!doctype html><html><head><meta charset="utf-8"><title>Notebook</title></head><body>'
    response = HttpResponse(page + body + b"</body></html>", content_type="text/html; charset=utf-8")
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = NOTEBOOK_CSP
    response["Cache-Control"] = "private, no-store"
    return response


@staff_view
def staff_entries(request, lab_slug: str):
    """A lab's entries with what each lacks, and the form for what an entry needs (audited when changed)."""
    lab = _lab(request, lab_slug)
    kit = services.kit_for(lab)
    form = EntryKitForm(request.POST or None, instance=kit, course=request.course)
    if request.method == "POST":
        if form.is_valid():
            before = {"parts": list(kit.parts or []), "deadline": kit.deadline_id} if kit.pk else None
            kit = form.save()
            audit.record(
                course=request.course,
                actor=request.user,
                action="lab.entry_kit",
                target=lab.slug,
                before=before,
                after={"parts": kit.parts, "deadline": kit.deadline_id},
            )
            messages.success(request, "The entry requirements are saved.")
            return redirect("labs:staff_entries", course_slug=request.course.slug, lab_slug=lab.slug)
        messages.error(request, "The entry requirements were not saved; see the reasons below.")
    entries = (
        LabEntry.objects.filter(lab=lab).select_related("lab", "member__user", "submission").prefetch_related("files")
    )
    rows = [{"entry": entry, "completeness": services.completeness(entry, kit)} for entry in entries]
    context = {"course": request.course, "lab": lab, "kit": kit, "rows": rows, "form": form}
    return render(request, "labs/staff_entries.html", context)


@staff_view
@require_GET
def staff_entry(request, lab_slug: str, pk: int):
    lab = _lab(request, lab_slug)
    entry = _visible_entry(request, lab, pk)
    kit = services.kit_for(lab)
    files = {item.part: item for item in entry.files.all()}
    context = {
        "course": request.course,
        "lab": lab,
        "entry": entry,
        "files": files,
        "media": entry_media(
            files, lambda part: reverse("labs:entry_file", args=[request.course.slug, lab.slug, entry.pk, part])
        ),
        "completeness": services.completeness(entry, kit),
        "loglikelihood": services.loglikelihood_check(entry, files.get(Part.NOTEBOOK)),
    }
    return render(request, "labs/staff_entry.html", context)


@staff_view
@require_GET
def entry_bundle(request, lab_slug: str, pk: int):
    lab = _lab(request, lab_slug)
    entry = _visible_entry(request, lab, pk)
    if not request.member.is_staff_role:
        raise PermissionDenied
    response = HttpResponse(exports.bundle(entry), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{exports.bundle_name(entry)}.zip"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
