"""Forms of the projects app: they only shape input; the rules live in projects.services."""

from django import forms

from courses.deadlines import zone_label
from courses.forms import CourseDateTimeField
from projects.models import (
    ABSTRACT_MAX,
    FEEDBACK_MAX,
    GROUP_NAME_MAX,
    REGRADE_REASON_MAX,
    RUBRIC_MAX,
    RUBRIC_MIN,
    TITLE_MAX,
)

PDF_ACCEPT = {"accept": "application/pdf,.pdf"}
RUBRIC_CHOICES = [(n, str(n)) for n in range(RUBRIC_MIN, RUBRIC_MAX + 1)]


class GroupCreateForm(forms.Form):
    name = forms.CharField(max_length=GROUP_NAME_MAX, label="Group name")


class InviteForm(forms.Form):
    email = forms.EmailField(label="Classmate's e-mail", help_text="The address she uses for this course.")


class ProposalForm(forms.Form):
    title = forms.CharField(max_length=TITLE_MAX, required=False, label="Proposal title")
    abstract = forms.CharField(
        max_length=ABSTRACT_MAX,
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=f"At most {ABSTRACT_MAX} characters.",
    )


class SlidesForm(forms.Form):
    file = forms.FileField(
        label="Slides (PDF)", widget=forms.ClearableFileInput(attrs=PDF_ACCEPT), help_text="At most 20 MB."
    )


class ReviewForm(forms.Form):
    paper_title = forms.CharField(max_length=300, label="Paper title")
    paper_authors = forms.CharField(max_length=500, label="Paper authors")
    paper_link = forms.CharField(
        max_length=500, label="Link or arXiv id", help_text="For example https://arxiv.org/abs/1706.03762 or 1706.03762"
    )
    file = forms.FileField(
        label="Your review (PDF, exactly one page)",
        widget=forms.ClearableFileInput(attrs=PDF_ACCEPT),
        help_text="At most 20 MB.",
    )


class RegradeForm(forms.Form):
    reason = forms.CharField(
        max_length=REGRADE_REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 4}),
        label="What should be looked at again?",
        help_text="You can ask for a regrade once.",
    )


class GradeForm(forms.Form):
    # An empty first choice: a mark is something the grader picks, never a default she forgot to change.
    clarity = forms.TypedChoiceField(
        choices=[("", "choose a mark"), *RUBRIC_CHOICES],
        coerce=int,
        label="Clarity of writing",
        error_messages={"required": "Choose a mark for clarity of writing."},
    )
    technical = forms.TypedChoiceField(
        choices=[("", "choose a mark"), *RUBRIC_CHOICES],
        coerce=int,
        label="Technical communication of the main ideas",
        error_messages={"required": "Choose a mark for the technical communication."},
    )
    passed = forms.TypedChoiceField(
        choices=[("1", "Pass"), ("0", "Fail")], coerce=lambda v: v == "1", widget=forms.RadioSelect, label="Result"
    )
    feedback = forms.CharField(max_length=FEEDBACK_MAX, required=False, widget=forms.Textarea(attrs={"rows": 6}))
    release = forms.BooleanField(required=False, label="Release to the student now")


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=300, label="Reason (logged)")


class StaffAddMemberForm(ReasonForm):
    email = forms.EmailField(label="Student's e-mail")


class GroupExtensionForm(ReasonForm):
    until = CourseDateTimeField(label="Slides due for this group until")

    def __init__(self, *args, course, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["until"].tz = course.tz
        # The course's zone, not the browser's: say which, on the field itself.
        self.fields["until"].label = f"Slides due for this group until ({zone_label(course)}, the course's time zone)"


class ScheduleSeedForm(forms.Form):
    seed = forms.CharField(max_length=60, label="Seed", help_text="The same seed gives the same order.")
