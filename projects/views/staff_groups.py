"""Staff pages for project groups: the overview, one group, its members, its extension and its talk."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from courses.models import Membership, Role
from courses.permissions import staff_view
from projects import services
from projects.forms import GroupExtensionForm, ReasonForm, StaffAddMemberForm
from projects.models import GROUPS_DEADLINE, SLIDES_DEADLINE, Group
from projects.selectors import group_eligibility, groups_of_course, project_deadline, review_queue
from projects.views.errors import show_errors
from projects.views.groups import group_context


@staff_view
def staff_home(request):
    course = request.course
    groups = [(group, group_eligibility(group)) for group in groups_of_course(course)]
    queue = review_queue(course=course)
    return render(
        request,
        "projects/staff_home.html",
        {
            "course": course,
            "groups": groups,
            "open_reviews": queue.count(),
            "regrades": sum(1 for r in queue if r.regrade_pending),
            "groups_deadline": project_deadline(course=course, key=GROUPS_DEADLINE),
            "slides_deadline": project_deadline(course=course, key=SLIDES_DEADLINE),
        },
    )


@staff_view
def staff_group(request, pk: int):
    group = get_object_or_404(Group, pk=pk, course=request.course)
    context = {"course": request.course, **group_context(group)}
    context["add_form"] = StaffAddMemberForm()
    context["remove_form"] = ReasonForm()
    context["extension_form"] = GroupExtensionForm(course=request.course)
    context["unpresent_form"] = ReasonForm()
    return render(request, "projects/staff_group.html", context)


def _staff_group_redirect(request, group_pk: int):
    if Group.objects.filter(pk=group_pk).exists():
        return redirect("projects:staff_group", course_slug=request.course.slug, pk=group_pk)
    return redirect("projects:staff_home", course_slug=request.course.slug)


@staff_view
@require_POST
def staff_add_member(request, pk: int):
    group = get_object_or_404(Group, pk=pk, course=request.course)
    form = StaffAddMemberForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the student's e-mail and a reason.")
        return _staff_group_redirect(request, pk)
    member = Membership.objects.filter(
        course=request.course, user__email__iexact=form.cleaned_data["email"], role=Role.STUDENT
    ).first()
    if member is None:
        messages.error(request, f"No student with the e-mail {form.cleaned_data['email']} is in this course.")
        return _staff_group_redirect(request, pk)
    try:
        services.staff_add_member(group=group, member=member, actor=request.user, reason=form.cleaned_data["reason"])
        messages.success(request, f"{member.user.email} added to {group.name}.")
    except ValidationError as exc:
        show_errors(request, exc)
    return _staff_group_redirect(request, pk)


@staff_view
@require_POST
def staff_remove_member(request, pk: int, member_pk: int):
    group = get_object_or_404(Group, pk=pk, course=request.course)
    member = get_object_or_404(Membership, pk=member_pk, course=request.course)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a reason: removals are logged.")
        return _staff_group_redirect(request, pk)
    try:
        services.staff_remove_member(group=group, member=member, actor=request.user, reason=form.cleaned_data["reason"])
        messages.success(request, f"{member.user.email} removed from {group.name}.")
    except ValidationError as exc:
        show_errors(request, exc)
    return _staff_group_redirect(request, pk)


@staff_view
@require_POST
def staff_extension(request, pk: int):
    group = get_object_or_404(Group, pk=pk, course=request.course)
    form = GroupExtensionForm(request.POST, course=request.course)
    if not form.is_valid():
        messages.error(request, "Give the new time and a reason.")
        return _staff_group_redirect(request, pk)
    try:
        granted = services.grant_group_extension(
            group=group, until=form.cleaned_data["until"], reason=form.cleaned_data["reason"], actor=request.user
        )
        messages.success(request, f"Extension granted to the {len(granted)} members of {group.name}.")
    except ValidationError as exc:
        show_errors(request, exc)
    return _staff_group_redirect(request, pk)


@staff_view
@require_POST
def staff_presented(request, pk: int):
    group = get_object_or_404(Group, pk=pk, course=request.course)
    if request.POST.get("action") == "clear":
        form = ReasonForm(request.POST)
        try:
            if not form.is_valid():
                raise ValidationError("Give a reason: clearing a presentation is logged.")
            services.clear_presented(group=group, actor=request.user, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            show_errors(request, exc)
    else:
        group = services.mark_presented(group=group, actor=request.user)
    if request.htmx:
        group.refresh_from_db()
        return render(request, "projects/_schedule_row.html", {"course": request.course, "group": group})
    if request.POST.get("next") == "schedule":
        return redirect("projects:staff_schedule", course_slug=request.course.slug)
    return _staff_group_redirect(request, pk)
