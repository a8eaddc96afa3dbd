"""Pages of the projects app: a student's project page, group actions, uploads, and the staff pages."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from courses import ratelimit
from courses.models import Membership, Role
from courses.permissions import course_view, staff_view, student_view
from projects import services
from projects.access import may_see_group, may_see_review
from projects.completion import completion_csv, completion_rows
from projects.forms import (
    GradeForm,
    GroupCreateForm,
    GroupExtensionForm,
    InviteForm,
    ProposalForm,
    ReasonForm,
    RegradeForm,
    ReviewForm,
    ScheduleSeedForm,
    SlidesForm,
    StaffAddMemberForm,
)
from projects.models import (
    GROUPS_DEADLINE,
    REVIEW_DEADLINE,
    SLIDES_DEADLINE,
    Group,
    Invitation,
    PaperReview,
    SlidesVersion,
)
from projects.references import paper_url
from projects.selectors import (
    allow_both_options,
    group_due,
    group_eligibility,
    group_members,
    group_of,
    groups_of_course,
    member_due,
    pending_invitations_for,
    project_deadline,
    review_queue,
)

FILE_CSP = "default-src 'none'; sandbox"


def _home(request):
    return redirect("projects:home", course_slug=request.course.slug)


def _fail(request, exc: ValidationError) -> None:
    for message in exc.messages:
        messages.error(request, message)


def _group_context(group: Group) -> dict:
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


# ---------------------------------------------------------------- student pages


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
        context.update(_group_context(group))
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
        _fail(request, exc)
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
        _fail(request, exc)
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
        _fail(request, exc)
    return _home(request)


@student_view
@require_POST
def invitation_cancel(request, pk: int):
    invitation = get_object_or_404(Invitation, pk=pk, group__course=request.course)
    try:
        services.cancel_invitation(invitation=invitation, member=request.member)
        messages.success(request, f"Invitation to {invitation.invitee.user.email} withdrawn.")
    except ValidationError as exc:
        _fail(request, exc)
    return _home(request)


@student_view
@require_POST
def leave(request, pk: int):
    group = _my_group(request, pk)
    try:
        services.leave_group(group=group, member=request.member)
        messages.success(request, f"You left {group.name}.")
    except ValidationError as exc:
        _fail(request, exc)
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
        _fail(request, exc)
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
        _fail(request, exc)
    else:
        note = " (late)" if version.late else ""
        messages.success(request, f"Slides uploaded{note}: {version.pages} pages. Earlier versions are kept.")
    return _home(request)


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
            _fail(request, exc)
    return redirect("projects:review", course_slug=request.course.slug)


# ---------------------------------------------------------------- files


def _pdf_response(field_file, filename: str) -> FileResponse:
    response = FileResponse(
        field_file.open("rb"), as_attachment=True, filename=filename, content_type="application/pdf"
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = FILE_CSP
    response["Cache-Control"] = "private, no-store"
    return response


@course_view()
@require_GET
def slides_file(request, pk: int):
    version = get_object_or_404(SlidesVersion.objects.select_related("group"), pk=pk, group__course=request.course)
    if not may_see_group(member=request.member, group=version.group):
        raise PermissionDenied("These slides belong to another group.")
    stamp = timezone.localtime(version.uploaded_at, request.course.tz).strftime("%Y%m%d-%H%M")
    return _pdf_response(version.file, f"{slugify(version.group.name) or 'group'}-slides-{stamp}.pdf")


@course_view()
@require_GET
def review_file(request, pk: int):
    item = get_object_or_404(PaperReview.objects.select_related("member"), pk=pk, member__course=request.course)
    if not may_see_review(member=request.member, review=item):
        raise PermissionDenied("This review belongs to another student.")
    return _pdf_response(item.file, f"paper-review-{item.member_id}.pdf")


# ---------------------------------------------------------------- staff pages


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
    context = {"course": request.course, **_group_context(group)}
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
        _fail(request, exc)
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
        _fail(request, exc)
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
        _fail(request, exc)
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
            _fail(request, exc)
    else:
        group = services.mark_presented(group=group, actor=request.user)
    if request.htmx:
        group.refresh_from_db()
        return render(request, "projects/_schedule_row.html", {"course": request.course, "group": group})
    if request.POST.get("next") == "schedule":
        return redirect("projects:staff_schedule", course_slug=request.course.slug)
    return _staff_group_redirect(request, pk)


@staff_view
def staff_schedule(request):
    course = request.course
    seed_form = ScheduleSeedForm(request.POST if request.POST.get("action") == "generate" else None)
    if request.method == "POST":
        try:
            if request.POST.get("action") == "generate":
                if not seed_form.is_valid():
                    raise ValidationError("Give a seed (any word or number) for the shuffle.")
                services.generate_schedule(course=course, seed=seed_form.cleaned_data["seed"], actor=request.user)
                messages.success(request, "Presentation order generated.")
            else:
                positions = {}
                for group in Group.objects.filter(course=course):
                    raw = request.POST.get(f"slot-{group.pk}", "").strip()
                    if raw and not raw.isdigit():
                        raise ValidationError(f"The slot of {group.name} must be a whole number.")
                    positions[group.pk] = int(raw) if raw else None
                services.set_schedule(course=course, positions=positions, actor=request.user)
                messages.success(request, "Presentation order saved.")
        except ValidationError as exc:
            _fail(request, exc)
        else:
            return redirect("projects:staff_schedule", course_slug=course.slug)
    return render(
        request,
        "projects/staff_schedule.html",
        {
            "course": course,
            "groups": groups_of_course(course),
            "seed_form": seed_form,
            "talk_minutes": f"{course.talk_seconds // 60}:{course.talk_seconds % 60:02d}",
        },
    )


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
        _fail(request, exc)
    return redirect("projects:staff_reviews", course_slug=request.course.slug)


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
