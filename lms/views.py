"""The staff's LMS page: the course's deployments, its linked sections, roster and grade syncs, and every grade
sent with what the LMS answered."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from pylti1p3.exception import LtiException
from requests import RequestException

from courses import gradebook
from courses.permissions import staff_view
from courses.roster import RosterError
from lms import roster
from lms.forms import DeploymentForm, RosterSyncForm
from lms.models import Deployment, GradeSent, Section
from lms.services import register_deployment

LMS_UNREACHABLE = (
    "The LMS did not answer as expected ({error}). Try again later; if it persists, check the registration."
)


@staff_view
def lms_page(request):
    course = request.course
    form = DeploymentForm()
    if request.method == "POST":
        form = DeploymentForm(request.POST)
        if form.is_valid():
            try:
                register_deployment(course=course, actor=request.user, **form.cleaned_data)
            except (PermissionDenied, ValidationError) as exc:
                form.add_error(None, exc.messages[0] if isinstance(exc, ValidationError) else str(exc))
            else:
                messages.success(request, "The LMS deployment is linked to this course.")
                return redirect("lms:page", course_slug=course.slug)
    context = {
        "course": course,
        "form": form,
        "sync_form": RosterSyncForm(),
        "deployments": Deployment.objects.filter(course=course).select_related("registration"),
        "sections": Section.objects.filter(deployment__course=course).select_related("deployment__registration"),
        "grades": GradeSent.objects.filter(line_item__section__deployment__course=course)
        .select_related("line_item__section", "member__user")
        .order_by("status", "-timestamp")[:500],
        "tool_urls": {name: request.build_absolute_uri(reverse(f"lms:{name}")) for name in ("login", "launch", "jwks")},
    }
    return render(request, "lms/page.html", context)


@staff_view
@require_POST
def sync_roster(request, pk: int):
    section = get_object_or_404(Section, pk=pk, deployment__course=request.course)
    form = RosterSyncForm(request.POST)
    form.is_valid()
    try:
        result = roster.sync_roster(
            section=section, actor=request.user, apply_staff_roles=form.cleaned_data.get("apply_staff_roles", False)
        )
    except RosterError as exc:
        messages.error(request, "The LMS roster was not imported: " + " ".join(exc.errors))
    except (LtiException, RequestException) as exc:
        messages.error(request, LMS_UNREACHABLE.format(error=str(exc)[:200]))
    else:
        text = (
            f"Roster from {section}: {len(result.roster.created)} added, {len(result.roster.updated)} updated, "
            f"{len(result.roster.unchanged)} unchanged."
        )
        if result.staff_to_confirm:
            text += " Staff roles waiting for an instructor's confirmation: " + ", ".join(result.staff_to_confirm) + "."
        messages.success(request, text)
    return redirect("lms:page", course_slug=request.course.slug)


@staff_view
@require_POST
def sync_grades(request, pk: int):
    """Asks a worker to send the section's grades; the page lists what the LMS answered as it answers."""
    section = get_object_or_404(Section, pk=pk, deployment__course=request.course)
    gradebook.request_sync(course_id=request.course.pk, section_id=section.pk, actor_id=request.user.pk)
    messages.success(
        request,
        f"Grades to {section} are being sent. The table below shows each score as the LMS answers; a refused one is "
        "sent again later by itself.",
    )
    return redirect("lms:page", course_slug=request.course.slug)
