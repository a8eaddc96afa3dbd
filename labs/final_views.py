"""The pages where she chooses her final entry, and goes back on it, before the lab's deadline."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render

from courses.deadlines import format_course_time
from courses.models import Role
from courses.permissions import course_view
from labs import finals
from labs.models import Lab, Submission


def _lab(request, lab_slug: str) -> Lab:
    return get_object_or_404(Lab.objects.select_related("deadline", "course"), course=request.course, slug=lab_slug)


@course_view(Role.STUDENT)
def mark_final(request, lab_slug: str, pk: int):
    """Moves her on the board, so it is shown first (what it changes, until when) and done only once confirmed."""
    lab = _lab(request, lab_slug)
    submission = get_object_or_404(Submission, pk=pk, lab=lab, member=request.member)
    return _final_choice(request, lab, submission)


@course_view(Role.STUDENT)
def clear_final(request, lab_slug: str):
    return _final_choice(request, _lab(request, lab_slug), None)


def _final_choice(request, lab: Lab, submission: Submission | None):
    member = request.member
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        try:
            if submission is None:
                finals.clear_final(lab=lab, member=member)
            else:
                finals.mark_final(submission=submission, member=member)
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
        else:
            closes = format_course_time(finals.choice_closes_at(lab=lab, member=member), request.course)
            done = (
                f"Submission #{submission.number} is now your final entry; the board ranks you by it."
                if submission
                else "You have no final entry now; the board ranks you by your best public score."
            )
            messages.success(request, f"{done} You can change this until {closes}.")
        return redirect("labs:lab", course_slug=request.course.slug, lab_slug=lab.slug)
    now = finals.her_entry(lab=lab, member=member)
    if submission is None:
        after = finals.her_entry(lab=lab, member=member, ignore_marked=True)
    else:
        after = finals.her_entry(lab=lab, member=member, final=submission)
    context = {
        "course": request.course,
        "lab": lab,
        "submission": submission,
        "now": now,
        "after": after,
        "worse": finals.scores_worse(lab, after, now),
        "closes_at": finals.choice_closes_at(lab=lab, member=member),
    }
    return render(request, "labs/final_confirm.html", context)
