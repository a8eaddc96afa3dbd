"""Paper review pages: the student hands hers in and asks for a regrade; staff grade and release."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from courses.permissions import staff_view, student_view
from projects import services
from projects.forms import GradeForm, RegradeForm, ReviewForm
from projects.models import REVIEW_DEADLINE, PaperReview
from projects.references import paper_url
from projects.selectors import allow_both_options, group_of, member_due, review_queue
from projects.views.errors import show_errors


@student_view
def review(request):
    course, member = request.course, request.member
    existing = PaperReview.objects.filter(member=member).first()
    form = ReviewForm(
        request.POST or None,
        request.FILES or None,
        initial={
            "paper_title": existing.paper_title,
            "paper_authors": existing.paper_authors,
            "paper_link": existing.paper_link,
        }
        if existing
        else None,
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.submit_review(
                member=member,
                paper_title=data["paper_title"],
                paper_authors=data["paper_authors"],
                paper_link=data["paper_link"],
                upload=data["file"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Review handed in. You will see the grade here once a TA releases it.")
            return redirect("projects:review", course_slug=course.slug)
    return render(
        request,
        "projects/review.html",
        {
            "course": course,
            "member": member,
            "form": form,
            "review": existing,
            "paper_href": paper_url(existing.paper_link) if existing else "",
            "in_group": group_of(member) is not None,
            "both_allowed": allow_both_options(course),
            "review_due": member_due(member=member, key=REVIEW_DEADLINE),
            "regrade_form": RegradeForm(),
        },
    )


@student_view
@require_POST
def regrade(request):
    existing = get_object_or_404(PaperReview, member=request.member)
    form = RegradeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say what should be looked at again (at most 1000 characters).")
    else:
        try:
            services.request_regrade(review=existing, member=request.member, reason=form.cleaned_data["reason"])
            messages.success(request, "Regrade requested; a TA will look at your review again.")
        except ValidationError as exc:
            show_errors(request, exc)
    return redirect("projects:review", course_slug=request.course.slug)


@staff_view
def staff_reviews(request):
    show = "all" if request.GET.get("show") == "all" else "open"
    return render(
        request,
        "projects/staff_reviews.html",
        {"course": request.course, "reviews": review_queue(course=request.course, show=show), "show": show},
    )


@staff_view
def staff_review(request, pk: int):
    item = get_object_or_404(PaperReview.objects.select_related("member__user"), pk=pk, member__course=request.course)
    initial = None
    if item.graded:
        initial = {
            "clarity": item.clarity,
            "technical": item.technical,
            "passed": "1" if item.passed else "0",
            "feedback": item.feedback,
        }
    form = GradeForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.grade_review(
                review=item,
                actor=request.user,
                clarity=data["clarity"],
                technical=data["technical"],
                passed=data["passed"],
                feedback=data["feedback"],
                release=data["release"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Grade saved" + (" and released." if data["release"] else " (not released)."))
            return redirect("projects:staff_reviews", course_slug=request.course.slug)
    return render(
        request,
        "projects/staff_review.html",
        {"course": request.course, "review": item, "form": form, "paper_href": paper_url(item.paper_link)},
    )


@staff_view
@require_POST
def staff_review_release(request, pk: int):
    item = get_object_or_404(PaperReview, pk=pk, member__course=request.course)
    try:
        services.release_review(review=item, actor=request.user)
        messages.success(request, f"Grade released to {item.member.user.email}.")
    except ValidationError as exc:
        show_errors(request, exc)
    return redirect("projects:staff_reviews", course_slug=request.course.slug)
