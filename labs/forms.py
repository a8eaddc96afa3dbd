"""Forms of the labs app."""

from django import forms


class TokenForm(forms.Form):
    name = forms.CharField(max_length=60, initial="notebook", help_text="To recognise it later, e.g. 'Colab'.")
    days = forms.IntegerField(min_value=1, max_value=180, initial=30, label="Valid for (days)")


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=200, required=False)
