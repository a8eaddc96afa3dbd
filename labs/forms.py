"""Forms of the labs app."""

from django import forms


class TokenForm(forms.Form):
    name = forms.CharField(max_length=60, initial="notebook", help_text="To recognise it later, e.g. 'Colab'.")
    days = forms.IntegerField(min_value=1, max_value=180, initial=30, label="Valid for (days)")


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=200, required=False)


class RerunForm(forms.Form):
    reason = forms.CharField(
        max_length=200,
        label="Why grade it again?",
        help_text="Written to the audit log, e.g. “worker died” or “grader fix 1.2”.",
        error_messages={"required": "Say why it is graded again; the reason goes to the audit log."},
    )


class BaseModelForm(forms.Form):
    name = forms.CharField(
        max_length=200, help_text="As adapters name it in base_model_name_or_path, e.g. LiquidAI/LFM2-1.2B."
    )
    folder = forms.CharField(
        max_length=300, help_text="Its folder on the grading nodes: a name under BASE_MODELS_DIR or an absolute path."
    )
    config = forms.FileField(label="config.json", help_text="The config.json of the provisioned folder, unchanged.")
