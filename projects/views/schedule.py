"""The staff page of the presentation schedule: shuffle the talks or set their order."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from courses.permissions import staff_view
from projects import services
from projects.forms import ScheduleSeedForm
from projects.models import Group
from projects.selectors import groups_of_course
from projects.views.errors import show_errors


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
            show_errors(request, exc)
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
