"""The learning-management systems the course is linked to over LTI 1.3: registrations, deployments, the LMS
sections (contexts) of a course, the people the LMS knows, its line items and every grade sent to it."""

from django.conf import settings
from django.db import models

from courses.models import Course, Membership
from lms import keyring


class Registration(models.Model):
    """The tool as one LMS knows it: the LMS's issuer and the client id it gave the tool, its endpoints, and the
    tool's own key pair for this LMS (its public half is published at the tool's JWKS)."""

    issuer = models.CharField(max_length=255, help_text="The LMS's issuer, e.g. https://canvas.instructure.com.")
    client_id = models.CharField(max_length=255, help_text="The client id the LMS gave the tool.")
    auth_login_url = models.URLField(max_length=500, help_text="The LMS's OIDC authorization endpoint.")
    auth_token_url = models.URLField(max_length=500, help_text="The LMS's OAuth2 token endpoint.")
    key_set_url = models.URLField(max_length=500, help_text="The LMS's public keys (JWKS).")
    frame_origin = models.URLField(
        max_length=255,
        help_text="Where the LMS shows its pages (e.g. https://school.instructure.com): it may frame us.",
    )
    # Encrypted (lms.keyring); read it through ``private_key_pem``.
    tool_private_key = models.TextField(editable=False)
    tool_kid = models.CharField(max_length=64, editable=False, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "client_id"], name="one_registration_per_client")]

    def __str__(self) -> str:
        return f"{self.issuer} (client {self.client_id})"

    @property
    def private_key_pem(self) -> str:
        return keyring.unseal(self.tool_private_key)


class Deployment(models.Model):
    """One installation of the tool in the LMS, tied to exactly one course: every launch through it opens that
    course, whichever LMS section it comes from."""

    registration = models.ForeignKey(Registration, on_delete=models.CASCADE, related_name="deployments")
    deployment_id = models.CharField(max_length=255)
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="lms_deployments")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["registration", "deployment_id"], name="one_course_per_deployment")
        ]

    def __str__(self) -> str:
        return f"{self.deployment_id} at {self.registration.issuer} -> {self.course.slug}"


class Section(models.Model):
    """An LMS course (an LTI context) linked to a course here; several may link to one course. Its service URLs
    come from the latest launch."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="sections")
    context_id = models.CharField(max_length=255)
    title = models.CharField(max_length=255, blank=True)
    memberships_url = models.URLField(max_length=500, blank=True)
    lineitems_url = models.URLField(max_length=500, blank=True)
    ags_scopes = models.JSONField(default=list, blank=True)
    last_launch_at = models.DateTimeField(null=True)
    # The latest grade sync of the section as a whole, for the staff's page: when it ran, and what failed (empty when
    # the LMS answered; single scores it refused are kept on their GradeSent).
    grade_sync_at = models.DateTimeField(null=True, editable=False)
    grade_sync_error = models.TextField(blank=True, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["deployment", "context_id"], name="one_section_per_context")]

    def __str__(self) -> str:
        return self.title or self.context_id

    @property
    def course(self) -> Course:
        return self.deployment.course


class LmsIdentity(models.Model):
    """The LMS's user id (``sub``) of an account, per registration: launches and grades name her by it."""

    registration = models.ForeignKey(Registration, on_delete=models.CASCADE, related_name="identities")
    subject = models.CharField(max_length=255)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lms_identities")
    linked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["registration", "subject"], name="one_account_per_lms_sub"),
            models.UniqueConstraint(fields=["registration", "user"], name="one_lms_sub_per_account"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} at {self.registration.issuer}"


class UsedNonce(models.Model):
    """A launch's nonce, kept once used: the same signed launch posted again is refused."""

    issuer = models.CharField(max_length=255)
    nonce = models.CharField(max_length=255)
    used_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "nonce"], name="nonce_used_once")]

    def __str__(self) -> str:
        return self.nonce


class LineItem(models.Model):
    """The LMS's grade column for one lab (``lab:<slug>``) or for the final project (``project``) in a section."""

    section = models.ForeignKey(Section, on_delete=models.CASCADE, related_name="line_items")
    key = models.CharField(max_length=80)
    url = models.URLField(max_length=500)
    label = models.CharField(max_length=255)
    score_maximum = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["section", "key"], name="one_line_item_per_key")]

    def __str__(self) -> str:
        return self.label


class GradeSent(models.Model):
    """The last score meant for one student in one line item, and whether the LMS took it."""

    class Status(models.TextChoices):
        SENT = "sent", "Sent"
        REFUSED = "refused", "Refused by the LMS (retried at the next sync)"

    line_item = models.ForeignKey(LineItem, on_delete=models.CASCADE, related_name="grades")
    member = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="+")
    score_given = models.FloatField()
    score_maximum = models.FloatField()
    comment = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    timestamp = models.DateTimeField(help_text="The score's timestamp as sent to the LMS.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["line_item", "member"], name="one_grade_per_line_item")]

    def __str__(self) -> str:
        return f"{self.line_item.label}: {self.score_given}/{self.score_maximum} ({self.status})"
