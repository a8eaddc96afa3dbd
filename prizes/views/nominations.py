"""A student nominates one generated sample of her lab work for a lab round, or withdraws it."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from courses.permissions import student_view
from prizes import services
from prizes.models import Entry, Round
from prizes.views.rounds import course_round


@student_view
def nominate(request, pk: int):
    from labs.models import EvaluationStatus, Submission

    round = course_round(request, pk)
    if round.kind != Round.Kind.LAB:
        raise Http404("This round takes no nominations.")
    current = Entry.objects.filter(round=round, member=request.member).select_related("submission").first()
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
