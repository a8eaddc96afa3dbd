"""Pages of judging and prizes: the judge's panel, presentation day, results, prizes and the public winners."""

import csv

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from courses.models import Course, Membership
from courses.permissions import course_view, public_view, staff_view, student_view
from prizes import selectors, services
from prizes.access import JUDGING_ROLES, assignment_for
from prizes.forms import AssignJudgeForm, CriterionForm, PrizeForm, RoundForm
from prizes.models import Entry, Prize, Round
from prizes.ranking import NORMALISATION_RULE, TIE_BREAK

judge_view = course_view(*JUDGING_ROLES)


def _round(request, pk: int) -> Round:
    return get_object_or_404(
        Round.objects.select_related("course", "lab", "current_entry"), pk=pk, course=request.course
    )


def _assignment_or_404(request, round: Round):
    # 404, not 403: a judge must not learn that other rounds exist.
    assignment = assignment_for(member=request.member, round=round)
    if assignment is None:
        raise Http404("No such round on your panel.")
    return assignment


# ---------------------------------------------------------------- judges


@judge_view
def judge_home(request):
    assignments = selectors.rounds_for_judge(request.member)
    return render(
        request,
        "prizes/judge_home.html",
        {"course": request.course, "assignments": assignments, "now": timezone.now()},
    )


def _judge_context(request, round: Round, assignment) -> dict:
    now = timezone.now()
    return {
        "course": request.course,
        "round": round,
        "assignment": assignment,
        "criteria": list(round.criteria.all()),
        "rows": selectors.judge_page(assignment=assignment),
        "clock": selectors.talk_clock(round=round, at=now),
        "open": round.is_open(now),
        "closed": round.is_closed(now),
        "now": now,
    }


@judge_view
@require_GET
def judge_round(request, pk: int):
    round = _round(request, pk)
    assignment = _assignment_or_404(request, round)
    context = _judge_context(request, round, assignment)
    template = "prizes/judge_round.html" if assignment.conflicts_declared_at else "prizes/judge_conflicts.html"
    return render(request, template, context)


@judge_view
@require_POST
def declare_conflicts(request, pk: int):
    round = _round(request, pk)
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
    round = _round(request, pk)
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
        response.status_code = 422
        # htmx does not swap error responses by default; this one carries the message she must read.
        response["HX-Reswap"] = "outerHTML"
    return response


@judge_view
@require_GET
def now_presenting(request, pk: int):
    round = _round(request, pk)
    if not request.member.is_staff_role:
        _assignment_or_404(request, round)
    return render(
        request,
        "prizes/_clock.html",
        {"course": request.course, "round": round, "clock": selectors.talk_clock(round=round)},
    )


# ---------------------------------------------------------------- students


@student_view
def nominate(request, pk: int):
    from labs.models import EvaluationStatus, Submission

    round = _round(request, pk)
    if round.kind != Round.Kind.LAB:
        raise Http404("This round takes no nominations.")
    current = Entry.objects.filter(round=round, member=request.member).first()
    if request.method == "POST":
        try:
            if request.POST.get("action") == "withdraw":
                services.withdraw_nomination(round=round, member=request.member)
                messages.success(request, "Nomination withdrawn.")
            else:
                submission = get_object_or_404(
                    Submission, pk=request.POST.get("submission") or 0, member=request.member, lab=round.lab
                )
                index = int(request.POST.get("sample", "-1"))
                services.nominate(round=round, member=request.member, submission=submission, sample_index=index)
                messages.success(request, "Your entry is nominated.")
        except (ValidationError, ValueError) as exc:
            messages.error(request, exc.messages[0] if isinstance(exc, ValidationError) else "Pick a sample.")
        return redirect("prizes:nominate", course_slug=request.course.slug, pk=round.pk)
    choices = []
    for submission in Submission.objects.filter(member=request.member, lab=round.lab).order_by("-received_at"):
        evaluation = (
            submission.evaluations.filter(status=EvaluationStatus.SUCCEEDED, samples__isnull=False)
            .order_by("-id")
            .first()
        )
        samples = [s for s in (evaluation.samples if evaluation else None) or [] if isinstance(s, dict)]
        if samples:
            choices.append({"submission": submission, "samples": list(enumerate(samples))})
    return render(
        request,
        "prizes/nominate.html",
        {
            "course": request.course,
            "round": round,
            "current": current,
            "choices": choices,
            "open": timezone.now() < round.opens_at,
        },
    )


# ---------------------------------------------------------------- staff


@staff_view
def staff_home(request):
    course = request.course
    return render(
        request,
        "prizes/staff_home.html",
        {
            "course": course,
            "rounds": course.judging_rounds.select_related("lab").order_by("opens_at"),
            "prizes": Prize.objects.filter(course=course).select_related("lab", "round"),
            "now": timezone.now(),
        },
    )


@staff_view
def round_edit(request, pk: int | None = None):
    course = request.course
    round = _round(request, pk) if pk else None
    form = RoundForm(request.POST or None, instance=round, course=course)
    if request.method == "POST" and form.is_valid():
        round = form.save()
        messages.success(request, f"Round {round.title} saved.")
        return redirect("prizes:round_setup", course_slug=course.slug, pk=round.pk)
    return render(request, "prizes/round_edit.html", {"course": course, "round": round, "form": form})


@staff_view
def round_setup(request, pk: int):
    round = _round(request, pk)
    course = request.course
    criterion_form = CriterionForm(prefix="criterion")
    judge_form = AssignJudgeForm(prefix="judge", course=course)
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "criterion":
                criterion_form = CriterionForm(request.POST, prefix="criterion")
                if criterion_form.is_valid():
                    services.add_criterion(round=round, **criterion_form.cleaned_data)
                    return redirect("prizes:round_setup", course_slug=course.slug, pk=round.pk)
            elif action == "judge":
                judge_form = AssignJudgeForm(request.POST, prefix="judge", course=course)
                if judge_form.is_valid():
                    services.assign_judge(round=round, judge=judge_form.cleaned_data["judge"], actor=request.user)
                    return redirect("prizes:round_setup", course_slug=course.slug, pk=round.pk)
            elif action == "unassign":
                judge = get_object_or_404(Membership, pk=request.POST.get("member") or 0, course=course)
                services.unassign_judge(round=round, judge=judge, actor=request.user)
                return redirect("prizes:round_setup", course_slug=course.slug, pk=round.pk)
            elif action == "groups":
                added = services.add_group_entries(round=round, actor=request.user)
                messages.success(request, f"{len(added)} group{'s' if len(added) != 1 else ''} added.")
                return redirect("prizes:round_setup", course_slug=course.slug, pk=round.pk)
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
    return render(
        request,
        "prizes/round_setup.html",
        {
            "course": course,
            "round": round,
            "criteria": round.criteria.all(),
            "assignments": round.assignments.select_related("judge__user"),
            "entries": [(e, selectors.entry_people(e)) for e in selectors.round_entries(round)],
            "criterion_form": criterion_form,
            "judge_form": judge_form,
        },
    )


@staff_view
def room(request, pk: int):
    round = _round(request, pk)
    return render(
        request,
        "prizes/room.html",
        {"course": request.course, "round": round, "clock": selectors.talk_clock(round=round)},
    )


@staff_view
def control(request, pk: int):
    round = _round(request, pk)
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "next":
                services.present_next(round=round, actor=request.user)
            elif action == "start":
                services.start_talk(round=round, actor=request.user)
            elif action == "stop":
                talk = services.stop_talk(round=round, actor=request.user)
                if talk.overrun_seconds:
                    messages.warning(request, f"The talk ran {talk.overrun_seconds} s over time.")
            elif action == "set":
                entry = get_object_or_404(Entry, pk=request.POST.get("entry") or 0, round=round)
                services.set_current(round=round, entry=entry, actor=request.user)
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
        return redirect("prizes:control", course_slug=request.course.slug, pk=round.pk)
    round.refresh_from_db()
    return render(
        request,
        "prizes/control.html",
        {
            "course": request.course,
            "round": round,
            "clock": selectors.talk_clock(round=round),
            "entries": selectors.round_entries(round),
            "talks": selectors.last_talks(round),
        },
    )


@staff_view
def results(request, pk: int):
    round = _round(request, pk)
    return render(
        request,
        "prizes/results.html",
        {
            "course": request.course,
            "round": round,
            "results": selectors.round_results(round),
            "progress": selectors.progress(round),
            "entries": selectors.round_entries(round),
            "closed": round.is_closed(timezone.now()),
            "tie_break": TIE_BREAK,
            "normalisation_rule": NORMALISATION_RULE,
        },
    )


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str:
    """Text a spreadsheet will not run as a formula: a leading = + - @ tab or CR gets a single quote before it."""
    text = "" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@staff_view
def results_csv(request, pk: int):
    round = _round(request, pk)
    data = selectors.round_results(round)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="round-{round.pk}-results.csv"'
    writer = csv.writer(response)
    header = ["rank", "entry", "title", "result", "plain mean", "judges"]
    header += [f"{j['label']} total" for j in data.judges]
    writer.writerow([csv_cell(h) for h in header])
    for row in data.rows:
        cells = [row["rank"], row["name"], row["title"], row["result"], row["plain_mean"], row["judges"]]
        cells += [p["total"] for p in row["per_judge"]]
        writer.writerow([csv_cell(c) for c in cells])
    return response


@staff_view
def prize_edit(request, pk: int | None = None):
    course = request.course
    prize = get_object_or_404(Prize, pk=pk, course=course) if pk else None
    form = PrizeForm(request.POST or None, instance=prize, course=course)
    if request.method == "POST" and form.is_valid():
        prize = form.save()
        messages.success(request, f"Prize {prize.title} saved.")
        return redirect("prizes:prize", course_slug=course.slug, pk=prize.pk)
    return render(request, "prizes/prize_edit.html", {"course": course, "prize": prize, "form": form})


@staff_view
def prize_detail(request, pk: int):
    course = request.course
    prize = get_object_or_404(Prize.objects.select_related("lab", "round"), pk=pk, course=course)
    if request.method == "POST":
        try:
            services.confirm_awards(prize=prize, actor=request.user, note=request.POST.get("note", "")[:300])
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
        else:
            messages.success(request, "Winners confirmed and published.")
        return redirect("prizes:prize", course_slug=course.slug, pk=prize.pk)
    computation = selectors.compute_winners(prize=prize)
    decision = selectors.latest_decision(prize)
    return render(
        request,
        "prizes/prize_detail.html",
        {
            "course": course,
            "prize": prize,
            "computation": computation,
            "decision": decision,
            "changes": selectors.award_changes(decision=decision, computation=computation),
            "tie_break": TIE_BREAK,
        },
    )


# ---------------------------------------------------------------- public


@public_view
def winners(request, course_slug: str):
    course = get_object_or_404(Course, slug=course_slug)
    return render(request, "prizes/winners.html", {"course": course, "prizes": selectors.public_winners(course)})
