"""A judge's pages: her rounds, her conflicts, her score sheets, a lab entry to read, and the talk clock."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_POST

from courses.permissions import course_view
from labs.entries import views as entry_views
from labs.entries.models import EntryFile, Part
from prizes import services
from prizes.access import JUDGING_ROLES, assignment_for, judge_may_see_entry
from prizes.models import Entry, JudgeAssignment, Round
from prizes.selectors.judging import entry_materials, judge_page, rounds_for_judge
from prizes.selectors.talks import talk_clock
from prizes.views.rounds import course_round

judge_view = course_view(*JUDGING_ROLES)


def _assignment_or_404(request, round: Round):
    # 404, not 403: a judge must not learn that other rounds exist.
    assignment = assignment_for(member=request.member, round=round)
    if assignment is None:
        raise Http404("No such round on your panel.")
    return assignment


@judge_view
def judge_home(request):
    assignments = rounds_for_judge(request.member)
    return render(
        request,
        "prizes/judge_home.html",
        {"course": request.course, "assignments": assignments, "now": timezone.now()},
    )


def _judge_context(request, round: Round, assignment, *, revising: bool = False) -> dict:
    now = timezone.now()
    return {
        "course": request.course,
        "round": round,
        "assignment": assignment,
        "criteria": list(round.criteria.all()),
        "rows": judge_page(assignment=assignment, revising=revising),
        "revising": revising,
        "clock": talk_clock(round=round, at=now),
        "open": round.is_open(now),
        "closed": round.is_closed(now),
        "now": now,
    }


@judge_view
@require_GET
def judge_round(request, pk: int):
    round = course_round(request, pk)
    assignment = _assignment_or_404(request, round)
    # ?conflicts: she revisits her declaration (while the round is open) to add or withdraw a conflict.
    revising = "conflicts" in request.GET and not round.is_closed(timezone.now())
    context = _judge_context(request, round, assignment, revising=revising)
    declared = assignment.conflicts_declared_at is not None
    template = "prizes/judge_round.html" if declared and not revising else "prizes/judge_conflicts.html"
    return render(request, template, context)


@judge_view
@require_POST
def declare_conflicts(request, pk: int):
    round = course_round(request, pk)
    assignment = _assignment_or_404(request, round)
    ids = {int(v) for v in request.POST.getlist("conflict") if v.isdigit()}
    try:
        services.declare_conflicts(assignment=assignment, entry_ids=ids)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(
            request,
            f"Thank you. {len(ids)} conflict{'s' if len(ids) != 1 else ''} declared."
            if ids
            else "Thank you: no conflicts declared.",
        )
    return redirect("prizes:judge_round", course_slug=request.course.slug, pk=round.pk)


@judge_view
@require_POST
def score(request, pk: int, entry_pk: int):
    round = course_round(request, pk)
    _assignment_or_404(request, round)
    entry = get_object_or_404(Entry, pk=entry_pk, round=round)
    criteria = list(round.criteria.all())
    values = {c.pk: request.POST.get(f"c{c.pk}", "") for c in criteria}
    error = ""
    try:
        services.save_scores(judge=request.member, entry=entry, values=values)
    except ValidationError as exc:
        error = exc.messages[0]
    if not request.htmx:
        if error:
            messages.error(request, error)
        else:
            messages.success(request, f"Scores for {entry.display_title} saved.")
        return redirect("prizes:judge_round", course_slug=request.course.slug, pk=round.pk)
    saved = {s.criterion_id: s.value for s in entry.scores.filter(judge=request.member)}
    # Show what she typed when it was refused, so she can correct it rather than retype it.
    shown = {**saved, **{k: v for k, v in values.items() if v != ""}} if error else saved
    response = render(
        request,
        "prizes/_score_form.html",
        {
            "course": request.course,
            "round": round,
            "criteria": criteria,
            "row": {"entry": entry, "scores": shown, "complete": all(c.pk in saved for c in criteria)},
            "error": error,
            "saved": not error,
            "open": round.is_open(timezone.now()),
        },
    )
    if error:
        # The base layout tells htmx to swap a 422 in: it carries the message she must read.
        response.status_code = 422
    return response


@judge_view
@require_GET
def now_presenting(request, pk: int):
    round = course_round(request, pk)
    if not request.member.is_staff_role:
        _assignment_or_404(request, round)
    return render(
        request,
        "prizes/_clock.html",
        {"course": request.course, "round": round, "clock": talk_clock(round=round)},
    )


def _judged_entry(request, pk: int, entry_pk: int) -> tuple[Round, JudgeAssignment, Entry]:
    """A lab-round entry for a judge of its round who has declared her conflicts and is not conflicted with it."""
    round = course_round(request, pk)
    assignment = _assignment_or_404(request, round)
    entry = get_object_or_404(
        Entry.objects.select_related("lab_entry__lab", "lab_entry__submission", "member__user"),
        pk=entry_pk,
        round=round,
        lab_entry__isnull=False,
    )
    if assignment.conflicts_declared_at is None:
        raise PermissionDenied("Go through the entry list and declare your conflicts of interest first.")
    if not judge_may_see_entry(member=request.member, entry=entry):
        raise PermissionDenied("You declared a conflict of interest with this entry: its materials are hidden.")
    return round, assignment, entry


@judge_view
@require_GET
def judge_entry(request, pk: int, entry_pk: int):
    """One lab entry as a judge reads it, with her score sheet for it."""
    round, _, entry = _judged_entry(request, pk, entry_pk)
    now = timezone.now()
    criteria = list(round.criteria.all())
    scores = dict(entry.scores.filter(judge=request.member).values_list("criterion_id", "value"))
    materials = entry_materials(entry)
    return render(
        request,
        "prizes/judge_entry.html",
        {
            "course": request.course,
            "round": round,
            "lab": round.lab,
            "entry": entry,
            "materials": materials,
            "media": entry_views.entry_media(
                materials.files,
                lambda part: reverse("prizes:entry_file", args=[request.course.slug, round.pk, entry.pk, part]),
            ),
            "e": materials.evaluation,
            "private_visible": materials.private_visible,
            **materials.extras,
            "criteria": criteria,
            "row": {
                "entry": entry,
                "scores": scores,
                "complete": bool(criteria) and all(c.pk in scores for c in criteria),
            },
            "open": round.is_open(now),
            "closed": round.is_closed(now),
        },
    )


@judge_view
@require_GET
@xframe_options_sameorigin
def entry_notebook(request, pk: int, entry_pk: int):
    """The entry's notebook, sanitised, for the sandboxed iframe of the judge's entry page."""
    _, _, entry = _judged_entry(request, pk, entry_pk)
    item = get_object_or_404(EntryFile, entry=entry.lab_entry, part=Part.NOTEBOOK)
    return entry_views.notebook_response(item)


@judge_view
@require_GET
def entry_file(request, pk: int, entry_pk: int, part: str):
    """One file of the entry (report, recording, plot, notebook) as the staff get it: an attachment, or inline for
    the page's audio player and image."""
    _, _, entry = _judged_entry(request, pk, entry_pk)
    item = get_object_or_404(EntryFile, entry=entry.lab_entry, part=part)
    return entry_views.file_response(entry.lab_entry, item, inline=entry_views.wants_inline(request))
