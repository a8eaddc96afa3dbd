"""Forms of the courses app; times are typed in the course's time zone."""

from datetime import datetime

from django import forms

from courses.deadlines import zone_label
from courses.models import Deadline, Membership, Role


class CourseDateTimeField(forms.DateTimeField):
    """A datetime-local input read in the course's time zone (not the server's, not the browser's)."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def __init__(self, *args, tz=None, **kwargs):
        kwargs.setdefault("input_formats", ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"])
        super().__init__(*args, **kwargs)
        self.tz = tz

    def prepare_value(self, value):
        if isinstance(value, datetime) and self.tz is not None:
            value = value.astimezone(self.tz).replace(tzinfo=None)
        return super().prepare_value(value)

    def to_python(self, value):
        result = super().to_python(value)
        if result is not None and self.tz is not None:
            # Interpret the wall-clock time in the course zone; fold=0 picks the first of an ambiguous hour.
            result = result.replace(tzinfo=None).replace(tzinfo=self.tz)
        return result


class RosterUploadForm(forms.Form):
    file = forms.FileField(help_text="CSV with the header email,name,role,registered (UTF-8).")


class MemberEditForm(forms.Form):
    display_name = forms.CharField(
        max_length=60, required=False, help_text="Shown on leaderboards, to judges and on the winners page."
    )
    role = forms.ChoiceField(choices=Role.choices)
    registered = forms.BooleanField(required=False, label="Registered for credit")


class DeadlineForm(forms.Form):
    title = forms.CharField(max_length=200)
    due_at = CourseDateTimeField(label="Due")
    extended_until = CourseDateTimeField(label="Extended for everyone until", required=False)
    late_policy = forms.ChoiceField(choices=Deadline.LatePolicy.choices)
    grace_minutes = forms.IntegerField(min_value=0, max_value=24 * 60)

    def __init__(self, *args, course, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("due_at", "extended_until"):
            self.fields[name].tz = course.tz


class ExtensionForm(forms.Form):
    deadline = forms.ModelChoiceField(queryset=Deadline.objects.none())
    member = forms.ModelChoiceField(queryset=Membership.objects.none(), label="Student")
    until = CourseDateTimeField()
    reason = forms.CharField(max_length=300, required=False)

    def __init__(self, *args, course, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["deadline"].queryset = course.deadlines.all()
        self.fields["member"].queryset = (
            course.memberships.filter(role=Role.STUDENT).select_related("user").order_by("user__email")
        )
        self.fields["member"].label_from_instance = lambda m: f"{m.user.get_full_name()} <{m.user.email}>"
        self.fields["until"].tz = course.tz
        # The course's zone, not the browser's: say which, on the field itself.
        self.fields["until"].label = f"Until ({zone_label(course)}, the course's time zone)"
        # A deadline of this course needs no course name after it.
        self.fields["deadline"].label_from_instance = lambda d: d.title


class JoinForm(forms.Form):
    code = forms.CharField(max_length=32, label="Join code")


class ListenerSignupForm(JoinForm):
    email = forms.EmailField()
    name = forms.CharField(max_length=150)


class ProfileForm(forms.Form):
    display_name = forms.CharField(max_length=60, help_text="Shown on leaderboards and to judges.")
    show_real_name = forms.BooleanField(required=False, label="Show my real name instead")
