"""The staff completion table of the course, on the page and as CSV."""

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from courses.permissions import staff_view
from projects.completion import completion_csv, completion_rows


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
