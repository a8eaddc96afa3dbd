"""Forms of the judging and prizes app; times are typed in the course's time zone."""

from django import forms

from courses.forms import CourseDateTimeField
from courses.models import Membership
from prizes.access import JUDGING_ROLES
from prizes.models import Prize, Round


class RoundForm(forms.ModelForm):
    opens_at = CourseDateTimeField(label="Opens")
    closes_at = CourseDateTimeField(label="Closes", help_text="Judges can revise their scores until then.")

    class Meta:
        model = Round
        fields = [
            "title",
            "kind",
            "lab",
            "instructions",
            "scale_min",
            "scale_max",
            "opens_at",
            "closes_at",
            "normalisation",
        ]
        labels = {"scale_min": "Lowest mark", "scale_max": "Highest mark", "normalisation": "Combining judges"}

    def __init__(self, *args, course, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.course = course
        self.fields["lab"].queryset = course.labs.all()
        self.fields["opens_at"].tz = course.tz
        self.fields["closes_at"].tz = course.tz


class CriterionForm(forms.Form):
    name = forms.CharField(max_length=80)
    weight = forms.FloatField(min_value=0, initial=1.0)
    description = forms.CharField(max_length=300, required=False)


class AssignJudgeForm(forms.Form):
    judge = forms.ModelChoiceField(queryset=Membership.objects.none(), label="Judge")

    def __init__(self, *args, course, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["judge"].queryset = (
            course.memberships.filter(role__in=JUDGING_ROLES).select_related("user").order_by("role", "user__email")
        )
        self.fields["judge"].label_from_instance = lambda m: (
            f"{m.user.get_full_name() or m.user.email} ({m.get_role_display()})"
        )


class PrizeForm(forms.ModelForm):
    registered_only = forms.NullBooleanField(
        required=False,
        label="Only students registered for credit may win",
        widget=forms.Select(choices=[("unknown", "Default of the category"), ("true", "Yes"), ("false", "No")]),
    )

    class Meta:
        model = Prize
        fields = [
            "title",
            "description",
            "sponsor",
            "places",
            "category",
            "lab",
            "round",
            "registered_only",
            "counts_late_work",
            "ranking",
            "metric_weight",
        ]
        labels = {"metric_weight": "Metric's share of the weighting"}

    def __init__(self, *args, course, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.course = course
        self.fields["lab"].queryset = course.labs.all()
        self.fields["round"].queryset = course.judging_rounds.all()
        self.fields["ranking"].required = False  # not stated: by the judges (presentation rounds know no other)

    def clean(self):
        data = super().clean()
        category = data.get("category")
        data["ranking"] = data.get("ranking") or Prize.Ranking.JUDGES
        if category == Prize.Category.LAB:
            if not data.get("lab"):
                self.add_error("lab", "A lab-competition prize needs its lab.")
            data["round"] = None
        elif category == Prize.Category.ROUND:
            if not data.get("round"):
                self.add_error("round", "A judged prize needs its round.")
            data["lab"] = None
        return data
