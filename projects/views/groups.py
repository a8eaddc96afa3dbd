"""A student's project pages: her project home, her group, its invitations, proposal and slides."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from courses import ratelimit
from courses.confirm import ask, confirmed
from courses.permissions import student_view
from projects import services
from projects.forms import GroupCreateForm, InviteForm, ProposalForm, SlidesForm
from projects.models import GROUPS_DEADLINE, REVIEW_DEADLINE, SLIDES_DEADLINE, Group, Invitation, PaperReview
from projects.selectors import (
    allow_both_options,
    group_due,
    group_eligibility,
    group_members,
    group_of,
    member_due,
    pending_invitations_for,
    project_deadline,
)
from projects.views.errors import show_errors


def _home(request):
    return redirect("projects:home", course_slug=request.course.slug)


def group_context(group: Group) -> dict:
    course = group.course
    slot_count = Group.objects.filter(course=course, presentation_order__isnull=False).count()
    return {
        "group": group,
        "members": group_members(group),
        "pending": group.invitations.filter(status=Invitation.Status.PENDING).select_related("invitee__user"),
        "eligibility": group_eligibility(group),
        "slides_versions": list(group.slides.select_related("uploaded_by__user")),
        "slides_due": group_due(group=group, key=SLIDES_DEADLINE),
        "groups_due": group_due(group=group, key=GROUPS_DEADLINE),
        "slot_count": slot_count,
        "talk_minutes": f"{course.talk_seconds // 60}:{course.talk_seconds % 60:02d}",
    }


@student_view
def home(request):
    course, member = request.course, request.member
    group = group_of(member)
    review = PaperReview.objects.filter(member=member).first()
    context = {
        "course": course,
        "member": member,
        "invitations": pending_invitations_for(member) if group is None else [],
        "review": review,
        "both_allowed": allow_both_options(course),
        "create_form": GroupCreateForm(),
        "groups_deadline": project_deadline(course=course, key=GROUPS_DEADLINE),
        "groups_due": member_due(member=member, key=GROUPS_DEADLINE),
        "slides_due": member_due(member=member, key=SLIDES_DEADLINE),
        "review_due": member_due(member=member, key=REVIEW_DEADLINE),
    }
    if group is not None:
        context.update(group_context(group))
        context["invite_form"] = InviteForm()
        context["proposal_form"] = ProposalForm(initial={"title": group.title, "abstract": group.abstract})
        context["slides_form"] = SlidesForm()
    return render(request, "projects/home.html", context)


@student_view
@require_POST
def group_create(request):
    form = GroupCreateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the group a name of at most 60 characters.")
        return _home(request)
    try:
        group = services.create_group(member=request.member, name=form.cleaned_data["name"])
    except ValidationError as exc:
        show_errors(request, exc)
    else:
        messages.success(request, f"Group “{group.name}” registered. Invite your teammates below.")
    return _home(request)


def _my_group(request, pk: int) -> Group:
    group = get_object_or_404(Group, pk=pk, course=request.course)
    if not group.members.filter(member=request.member).exists():
        raise PermissionDenied("You are not a member of this group.")
    return group


@student_view
@require_POST
def invite(request, pk: int):
    group = _my_group(request, pk)
    form = InviteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter your classmate's e-mail address.")
        return _home(request)
    # Bounded per student, so the invitation form cannot be used to list who is enrolled.
    sent = ratelimit.window("invite", str(request.member.pk), "INVITE_RATE_LIMIT", ratelimit.INVITE_MEMBER_LIMIT)
    if sent.hit() > sent.limit:
        messages.error(
            request,
            f"You have sent many invitations in a short time; try again in {sent.retry_after() // 60 + 1} minutes.",
        )
        return _home(request)
    try:
        invitation = services.invite(group=group, inviter=request.member, email=form.cleaned_data["email"])
    except ValidationError as exc:
        show_errors(request, exc)
    else:
        messages.success(request, f"Invitation sent to {invitation.invitee.user.email}.")
    return _home(request)


@student_view
@require_POST
def invitation_respond(request, pk: int):
    invitation = get_object_or_404(Invitation, pk=pk, invitee=request.member)
    try:
        if request.POST.get("action") == "accept":
            services.accept_invitation(invitation=invitation, member=request.member)
            messages.success(request, f"You joined {invitation.group.name}.")
        else:
            services.decline_invitation(invitation=invitation, member=request.member)
            messages.success(request, f"You declined the invitation to {invitation.group.name}.")
    except ValidationError as exc:
        show_errors(request, exc)
    return _home(request)


@student_view
@require_POST
def invitation_cancel(request, pk: int):
    invitation = get_object_or_404(Invitation, pk=pk, group__course=request.course)
    try:
        services.cancel_invitation(invitation=invitation, member=request.member)
        messages.success(request, f"Invitation to {invitation.invitee.user.email} withdrawn.")
    except ValidationError as exc:
        show_errors(request, exc)
    return _home(request)


@student_view
@require_POST
def leave(request, pk: int):
    group = _my_group(request, pk)
    if not confirmed(request):
        others = group.members.exclude(member=request.member).count()
        return ask(
            request,
            title=f"Leave {group.name}?",
            consequences=[
                f"You will no longer be a member of {group.name}, and will not present with it.",
                "To come back, a member of the group must invite you again."
                if others
                else "You are its last member: the group and its proposal are removed.",
            ],
            button=f"Leave {group.name}",
            cancel_url=reverse("projects:home", args=[request.course.slug]),
        )
    try:
        services.leave_group(group=group, member=request.member)
        messages.success(request, f"You left {group.name}.")
    except ValidationError as exc:
        show_errors(request, exc)
    return _home(request)


@student_view
@require_POST
def proposal(request, pk: int):
    group = _my_group(request, pk)
    form = ProposalForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return _home(request)
    try:
        services.update_proposal(
            group=group, member=request.member, title=form.cleaned_data["title"], abstract=form.cleaned_data["abstract"]
        )
        messages.success(request, "Proposal saved.")
    except ValidationError as exc:
        show_errors(request, exc)
    return _home(request)


@student_view
@require_POST
def slides_upload(request, pk: int):
    group = _my_group(request, pk)
    form = SlidesForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Choose the PDF of your slides.")
        return _home(request)
    try:
        version = services.upload_slides(group=group, member=request.member, upload=form.cleaned_data["file"])
    except ValidationError as exc:
        show_errors(request, exc)
    else:
        note = " (late)" if version.late else ""
        messages.success(request, f"Slides uploaded{note}: {version.pages} pages. Earlier versions are kept.")
    return _home(request)
