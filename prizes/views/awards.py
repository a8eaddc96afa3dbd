"""Staff pages of prizes: define a prize, see its computed winners, confirm and publish them."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render

from courses.permissions import staff_view
from prizes import services
from prizes.forms import PrizeForm
from prizes.models import Prize
from prizes.ranking import PRIZE_TIE_BREAK, TIE_BREAK
from prizes.selectors.winners import award_changes, compute_winners, latest_decision


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
    computation = compute_winners(prize=prize)
    decision = latest_decision(prize)
    return render(
        request,
        "prizes/prize_detail.html",
        {
            "course": course,
            "prize": prize,
            "computation": computation,
            "decision": decision,
            "changes": award_changes(decision=decision, computation=computation),
            "tie_break": TIE_BREAK,
            "prize_tie_break": PRIZE_TIE_BREAK,
        },
    )
