"""Pages of the courses app: dashboard, roster, deadlines, extensions, audit log, joining and profile."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from courses import audit, ratelimit, services
from courses.confirm import ask, confirmed
from courses.deadlines import format_course_time
from courses.features import dashboard_panels
from courses.forms import (
    DeadlineForm,
    ExtensionForm,
    JoinForm,
    ListenerSignupForm,
    MemberEditForm,
    ProfileForm,
    RosterUploadForm,
)
from courses.models import Course, Extension, Membership
from courses.permissions import course_view, signed_in_view, staff_view
from courses.roster import (
    MAX_ROSTER_BYTES,
    RosterError,
    edit_member,
    import_roster,
    removal_consequences,
    remove_member,
)
from courses.selectors import deadlines_for

User = get_user_model()


def page_not_found(request, exception=None):
    if request.path.startswith("/api/"):
        from django.http import JsonResponse

        return JsonResponse(
            {"error": {"code": "not_found", "message": "There is no such API address; see /api/openapi.json."}},
            status=404,
        )
    return render(request, "404.html", status=404)


@signed_in_view
def home(request):
    memberships = list(Membership.objects.filter(user=request.user).select_related("course"))
    if len(memberships) == 1:
        return redirect("courses:dashboard", course_slug=memberships[0].course.slug)
    return render(request, "courses/home.html", {"memberships": memberships})


@course_view()
def dashboard(request):
    course, member = request.course, request.member
    context = {
        "course": course,
        "member": member,
        "deadlines": []
        if member.role == "judge"
        else deadlines_for(course=course, member=member if member.role == "student" else None),
        "panels": dashboard_panels(course=course, member=member),
    }
    return render(request, "courses/dashboard.html", context)


@staff_view
def roster(request):
    course = request.course
    form = RosterUploadForm()
    errors = []
    if request.method == "POST":
        form = RosterUploadForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > MAX_ROSTER_BYTES:
                errors = [f"The file is {upload.size / 1e6:.1f} MB; a roster may be at most 2 MB."]
            else:
                try:
                    result = import_roster(course=course, data=upload.read(), actor=request.user)
                except RosterError as exc:
                    errors = exc.errors
                else:
                    messages.success(
                        request,
                        f"Roster imported: {len(result.created)} added, {len(result.updated)} updated, "
                        f"{len(result.unchanged)} unchanged.",
                    )
                    return redirect("courses:roster", course_slug=course.slug)
    members = course.memberships.select_related("user").order_by("role", "user__email")
    return render(
        request, "courses/roster.html", {"course": course, "form": form, "errors": errors, "members": members}
    )


def _roster_member(request, pk: int) -> Membership:
    # Only this course's members: another course's membership number is not found here.
    return get_object_or_404(Membership.objects.select_related("user"), pk=pk, course=request.course)


@staff_view
def roster_member(request, pk: int):
    """One member of the roster: her display name, role and registration, and her removal from the course."""
    member = _roster_member(request, pk)
    initial = {"display_name": member.display_name, "role": member.role, "registered": member.registered_for_credit}
    form = MemberEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            edit_member(
                course=request.course,
                member=member,
                actor=request.user,
                display_name=form.cleaned_data["display_name"],
                role=form.cleaned_data["role"],
                registered=form.cleaned_data["registered"],
            )
        except (ValidationError, PermissionDenied) as exc:
            form.add_error(None, exc.messages[0] if isinstance(exc, ValidationError) else str(exc))
        else:
            messages.success(request, f"{member.user.email} updated.")
            return redirect("courses:roster", course_slug=request.course.slug)
    return render(request, "courses/roster_member.html", {"course": request.course, "member": member, "form": form})


@staff_view
@require_POST
def roster_remove(request, pk: int):
    member = _roster_member(request, pk)
    back = reverse("courses:roster_member", args=[request.course.slug, member.pk])
    if not confirmed(request):
        deleted = removal_consequences(member)
        return ask(
            request,
            title=f"Remove {member.user.email} from {request.course.name}?",
            consequences=[
                f"She loses access to the course's pages as {member.get_role_display()}; her account stays.",
                "Deleted with her membership: " + (", ".join(deleted) if deleted else "nothing else") + ".",
                "The removal is written to the audit log; it cannot be undone, only a new enrolment is possible.",
            ],
            button=f"Remove {member.user.email}",
            cancel_url=back,
        )
    try:
        remove_member(course=request.course, member=member, actor=request.user)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
        return redirect(back)
    messages.success(request, f"{member.user.email} removed from the course.")
    return redirect("courses:roster", course_slug=request.course.slug)


@staff_view
def deadlines(request):
    course = request.course
    return render(
        request,
        "courses/deadlines.html",
        {"course": course, "deadlines": deadlines_for(course=course, member=None)},
    )


@staff_view
def deadline_edit(request, key: str):
    course = request.course
    deadline = get_object_or_404(course.deadlines, key=key)
    initial = {
        "title": deadline.title,
        "due_at": deadline.due_at,
        "extended_until": deadline.extended_until,
        "late_policy": deadline.late_policy,
        "grace_minutes": deadline.grace_minutes,
    }
    form = DeadlineForm(request.POST or None, course=course, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.update_deadline(
                deadline=deadline,
                actor=request.user,
                due_at=data["due_at"],
                extended_until=data["extended_until"],
                late_policy=data["late_policy"],
                grace_minutes=data["grace_minutes"],
                title=data["title"],
            )
        except ValidationError as exc:
            form.add_error("extended_until", exc.messages[0])
        else:
            messages.success(request, f"{deadline.title} saved.")
            return redirect("courses:deadlines", course_slug=course.slug)
    return render(request, "courses/deadline_edit.html", {"course": course, "deadline": deadline, "form": form})


@staff_view
def extensions(request):
    course = request.course
    form = ExtensionForm(request.POST or None, course=course, initial=request.GET.dict() or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.grant_extension(
                deadline=data["deadline"],
                member=data["member"],
                until=data["until"],
                reason=data["reason"],
                actor=request.user,
            )
        except ValidationError as exc:
            form.add_error(None, exc.messages[0])
        else:
            messages.success(request, f"Extension granted to {data['member'].user.email}.")
            return redirect("courses:extensions", course_slug=course.slug)
    active = (
        Extension.objects.filter(deadline__course=course, revoked_at__isnull=True)
        .select_related("deadline", "member__user", "granted_by")
        .order_by("deadline__due_at", "member__user__email")
    )
    return render(request, "courses/extensions.html", {"course": course, "form": form, "active": active})


@staff_view
@require_POST
def extension_revoke(request, pk: int):
    extension = get_object_or_404(
        Extension.objects.select_related("deadline", "member__user"), pk=pk, deadline__course=request.course
    )
    if not confirmed(request):
        return ask(
            request,
            title=f"Revoke {extension.member.user.email}'s extension for {extension.deadline.title}?",
            consequences=[
                f"Her deadline goes back to {format_course_time(extension.deadline.course_due_at, request.course)}; "
                "if that has passed, her next upload is refused or marked late.",
                "The revocation is written to the audit log; to undo it, grant a new extension.",
            ],
            button="Revoke the extension",
            cancel_url=reverse("courses:extensions", args=[request.course.slug]),
        )
    try:
        services.revoke_extension(extension=extension, actor=request.user)
        messages.success(request, "Extension revoked.")
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    return redirect("courses:extensions", course_slug=request.course.slug)


@staff_view
def audit_log(request):
    course = request.course
    entries = course.audit_entries.select_related("actor")
    actions = sorted(set(course.audit_entries.values_list("action", flat=True)))
    action = request.GET.get("action", "")
    who = request.GET.get("who", "").strip()[:200]
    about = request.GET.get("about", "").strip()[:200]
    problem = ""
    if action and action not in actions:
        problem, action = f"No entry has the action “{action}”; showing every action.", ""
    if action:
        entries = entries.filter(action=action)
    if who:
        entries = entries.filter(actor__email__icontains=who)
    if about:
        entries = entries.filter(target__icontains=about)
    rows = [(entry, audit.changes(entry, course)) for entry in entries[:500]]
    filters = {"action": action, "who": who, "about": about}
    context = {"course": course, "rows": rows, "actions": actions, "filters": filters, "problem": problem}
    return render(request, "courses/audit.html", context)


@staff_view
@require_POST
def join_code(request):
    services.rotate_join_code(course=request.course, actor=request.user, close=request.POST.get("action") == "close")
    return redirect("courses:roster", course_slug=request.course.slug)


def join(request, course_slug: str):
    """Listeners enrol with the join code; someone without an account gets a one-time set-password link.

    Before sign-in the page is limited per address, checks the code before anything else, and answers the same
    whether or not the e-mail has an account (an existing account is told by e-mail to sign in and join).
    """
    course = get_object_or_404(Course, slug=course_slug)
    signed_in = request.user.is_authenticated
    if signed_in and Membership.objects.filter(course=course, user=request.user).exists():
        return redirect("courses:dashboard", course_slug=course.slug)
    form_class = JoinForm if signed_in else ListenerSignupForm
    form = form_class(request.POST or None)
    if request.method == "POST" and not signed_in:
        per_address = ratelimit.window(
            "join-address", ratelimit.client_address(request), "JOIN_ADDRESS_LIMIT", ratelimit.JOIN_ADDRESS_LIMIT
        )
        if per_address.exceeded():
            wait = per_address.retry_after()
            return ratelimit.too_many(
                request,
                f"Too many attempts to join from your network. Wait {ratelimit.retry_text(wait)} and try again.",
                wait,
                template="courses/join.html",
                context={"course": course, "form": form},
            )
        per_address.hit()
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                if signed_in:
                    services.join_course(course=course, user=request.user, code=form.cleaned_data["code"])
                    messages.success(request, f"You joined {course.name} as a listener.")
                    return redirect("courses:dashboard", course_slug=course.slug)
                services.check_join_code(course=course, code=form.cleaned_data["code"])
                email = form.cleaned_data["email"].lower()
                existing = User.objects.filter(email__iexact=email).first()
                if existing is not None:
                    services.send_join_notice(user=existing, course=course)
                    return render(request, "courses/join_done.html", {"course": course})
                first, _, last = form.cleaned_data["name"].rpartition(" ")
                user = User(username=email, email=email, first_name=first or last, last_name=last if first else "")
                user.set_unusable_password()
                user.save()
                services.join_course(course=course, user=user, code=form.cleaned_data["code"])
        except ValidationError as exc:
            form.add_error(None, exc.messages[0])
        else:
            services.send_welcome(user=user, course=course)
            return render(request, "courses/join_done.html", {"course": course})
    return render(request, "courses/join.html", {"course": course, "form": form})


join.access_rule = ("public", ())


@course_view()
def profile(request):
    member = request.member
    form = ProfileForm(
        request.POST or None,
        initial={"display_name": member.display_name, "show_real_name": member.show_real_name},
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.update_profile(
                member=member,
                display_name=form.cleaned_data["display_name"],
                show_real_name=form.cleaned_data["show_real_name"],
            )
        except ValidationError as exc:
            form.add_error("display_name", exc.messages[0])
        else:
            messages.success(request, "Profile saved.")
            return redirect(reverse("courses:profile", kwargs={"course_slug": request.course.slug}))
    return render(request, "courses/profile.html", {"course": request.course, "form": form, "member": member})
