"""The staff's grading queue: filtered by lab, student and state; one evaluation; re-runs with a reason; re-grades."""

from django.contrib import messages
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from courses.permissions import staff_view
from labs import selectors, services
from labs.forms import ReasonForm, RerunForm
from labs.models import Evaluation, EvaluationStatus, Lab, Submission

SHOWN = 300


@staff_view
def queue(request):
    course = request.course
    labs = list(course.labs.all())
    lab_slug = request.GET.get("lab", "")
    student = request.GET.get("student", "").strip()[:200]
    status = request.GET.get("status", "")
    problems = []
    evaluations = Evaluation.objects.filter(submission__lab__course=course).select_related(
        "submission__lab", "submission__member__user"
    )
    if lab_slug:
        if lab_slug in {lab.slug for lab in labs}:
            evaluations = evaluations.filter(submission__lab__slug=lab_slug)
        else:
            problems.append(f"This course has no lab “{lab_slug}”; showing every lab.")
            lab_slug = ""
    if status:
        if status in EvaluationStatus.values:
            evaluations = evaluations.filter(status=status)
        else:
            problems.append(f"“{status}” is not a state of an evaluation; showing every state.")
            status = ""
    if student:
        evaluations = evaluations.filter(
            Q(submission__member__user__email__icontains=student)
            | Q(submission__member__display_name__icontains=student)
            | Q(submission__member__user__first_name__icontains=student)
            | Q(submission__member__user__last_name__icontains=student)
        )
    context = {
        "course": course,
        "evaluations": evaluations.order_by("-id")[:SHOWN],
        "shown": SHOWN,
        "summary": selectors.queue_summary(course=course),
        "filters": {"lab": lab_slug, "student": student, "status": status},
        "states": EvaluationStatus.choices,
        "problems": problems,
        "labs": labs,
        "shared": {lab.slug: selectors.shared_artifacts(lab=lab) for lab in labs},
    }
    return render(request, "labs/queue.html", context)


@staff_view
def evaluation_detail(request, pk: int):
    evaluation = get_object_or_404(
        Evaluation.objects.select_related("submission__lab", "submission__member__user"),
        pk=pk,
        submission__lab__course=request.course,
    )
    return render(request, "labs/evaluation.html", {"course": request.course, "evaluation": evaluation})


@staff_view
def rerun(request, pk: int):
    """A re-run costs a grading node's time and is audited, so it says why (asked on its own page)."""
    submission = get_object_or_404(
        Submission.objects.select_related("lab", "member__user"), pk=pk, lab__course=request.course
    )
    form = RerunForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        evaluation = services.rerun(submission=submission, actor=request.user, reason=form.cleaned_data["reason"])
        messages.success(
            request,
            f"Submission #{submission.number} of {submission.member.public_name} queued again as evaluation "
            f"{evaluation.pk}.",
        )
        return redirect("labs:queue", course_slug=request.course.slug)
    status = 400 if request.method == "POST" else 200
    context = {"course": request.course, "submission": submission, "form": form}
    return render(request, "labs/rerun.html", context, status=status)


@staff_view
@require_POST
def regrade(request, lab_slug: str):
    lab = get_object_or_404(Lab, course=request.course, slug=lab_slug)
    form = ReasonForm(request.POST)
    reason = (form.cleaned_data["reason"] if form.is_valid() else "") or "bulk re-grade"
    count = services.regrade_lab(lab=lab, actor=request.user, reason=reason)
    messages.success(request, f"{count} submissions of {lab.title} queued for re-grading.")
    return redirect("labs:queue", course_slug=request.course.slug)
