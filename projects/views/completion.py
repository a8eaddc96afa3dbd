"""The staff completion table of the course, on the page and as CSV; the scores CSV and each student's record."""

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from courses.models import Role
from courses.permissions import staff_view
from projects.completion import completion_csv, completion_rows
from projects.gradebook import scores_csv, student_record


@staff_view
def staff_completion(request):
    course = request.course
    listeners = request.GET.get("listeners") == "1"
    rows, lab_slugs = completion_rows(course=course, include_listeners=listeners)
    return render(
        request,
        "projects/staff_completion.html",
        {"course": course, "rows": rows, "lab_slugs": lab_slugs, "listeners": listeners},
    )


@staff_view
@require_GET
def staff_completion_csv(request):
    course = request.course
    listeners = request.GET.get("listeners") == "1"
    response = HttpResponse(
        completion_csv(course=course, include_listeners=listeners), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{course.slug}-completion.csv"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@staff_view
@require_GET
def staff_scores_csv(request):
    course = request.course
    listeners = request.GET.get("listeners") == "1"
    response = HttpResponse(
        scores_csv(course=course, viewer=request.member, include_listeners=listeners),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{course.slug}-scores.csv"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@staff_view
def staff_student(request, member_pk: int):
    """One student's record: her submissions, board entries, lab entries, extensions, project and grade."""
    course = request.course
    member = get_object_or_404(course.memberships.select_related("user"), pk=member_pk, role=Role.STUDENT)
    record = student_record(course=course, member=member, viewer=request.member)
    return render(request, "projects/staff_student.html", {"course": course, "record": record})
