from django import forms


class DeploymentForm(forms.Form):
    issuer = forms.CharField(max_length=255, help_text="The LMS's issuer, e.g. https://canvas.instructure.com.")
    client_id = forms.CharField(max_length=255, help_text="The client id (Canvas: the developer key's number).")
    deployment_id = forms.CharField(max_length=255)
    auth_login_url = forms.URLField(max_length=500, assume_scheme="https", label="LMS authorization endpoint")
    auth_token_url = forms.URLField(max_length=500, assume_scheme="https", label="LMS token endpoint")
    key_set_url = forms.URLField(max_length=500, assume_scheme="https", label="LMS public keys (JWKS)")
    frame_origin = forms.URLField(
        max_length=255,
        assume_scheme="https",
        label="Address of the LMS's pages",
        help_text="e.g. https://school.instructure.com",
    )


class RosterSyncForm(forms.Form):
    apply_staff_roles = forms.BooleanField(
        required=False, label="Also make the LMS's TAs and instructors TAs and instructors here (instructors only)"
    )
