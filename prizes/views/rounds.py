"""Staff pages of judging rounds: set one up, run presentation day from the control page and the room screen."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from courses.models import Membership
from courses.permissions import staff_view
from prizes import services
from prizes.forms import AssignJudgeForm, CriterionForm, RoundForm
from prizes.models import Entry, Prize, Round
from prizes.selectors.judging import entry_people, round_entries
from prizes.selectors.talks import last_talks, talk_clock


def course_round(request, pk: int) -> Round:
    return get_object_or_404(
        Round.objects.select_related("course", "lab", "current_entry"), pk=pk, course=request.course
    )


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
    round = course_round(request, pk) if pk else None
    form = RoundForm(request.POST or None, instance=round, course=course)
    if request.method == "POST" and form.is_valid():
        round = form.save()
        messages.success(request, f"Round {round.title} saved.")
        return redirect("prizes:round_setup", course_slug=course.slug, pk=round.pk)
    return render(request, "prizes/round_edit.html", {"course": course, "round": round, "form": form})


@staff_view
def round_setup(request, pk: int):
    round = course_round(request, pk)
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
            elif action == "lab_entries":
                added, incomplete = services.add_lab_entries(round=round, actor=request.user)
                left_out = (
                    f" {incomplete} incomplete {'entry' if incomplete == 1 else 'entries'} left out."
                    if incomplete
                    else ""
                )
                messages.success(request, f"{len(added)} entr{'ies' if len(added) != 1 else 'y'} added.{left_out}")
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
            "entries": [(e, entry_people(e)) for e in round_entries(round)],
            "criterion_form": criterion_form,
            "judge_form": judge_form,
        },
    )


@staff_view
def room(request, pk: int):
    round = course_round(request, pk)
    return render(
        request,
        "prizes/room.html",
        {"course": request.course, "round": round, "clock": talk_clock(round=round)},
    )


@staff_view
def control(request, pk: int):
    round = course_round(request, pk)
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
            "clock": talk_clock(round=round),
            "entries": round_entries(round),
            "talks": last_talks(round),
        },
    )
