"""Courses, memberships, deadlines, extensions and the audit log."""

import secrets
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q


def _validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{value!r} is not a known time zone (e.g. America/New_York).")


class Course(models.Model):
    class CompletionRule(models.TextChoices):
        PROJECT = "project", "Project assignment done"
        PROJECT_AND_LABS = "project_and_labs", "Project assignment and every required lab done"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    term = models.CharField(max_length=60, blank=True)
    time_zone = models.CharField(max_length=64, default="America/New_York", validators=[_validate_time_zone])
    join_code = models.CharField(
        max_length=32, blank=True, help_text="Listeners enrol with this code; empty means joining is closed."
    )
    completion_rule = models.CharField(max_length=32, choices=CompletionRule.choices, default=CompletionRule.PROJECT)
    group_size_min = models.PositiveSmallIntegerField(default=1)
    group_size_max = models.PositiveSmallIntegerField(default=4)
    talk_seconds = models.PositiveIntegerField(default=180, help_text="Strict time per proposal presentation.")
    # When the coalesced grade sync asked for by students' own changes will run; None while none is waiting.
    grade_sync_due_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.term})" if self.term else self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    @staticmethod
    def new_join_code() -> str:
        return secrets.token_urlsafe(6).replace("-", "x").replace("_", "y")


class Role(models.TextChoices):
    STUDENT = "student", "Student"
    TA = "ta", "TA"
    INSTRUCTOR = "instructor", "Instructor"
    JUDGE = "judge", "Judge"


STAFF_ROLES = (Role.TA, Role.INSTRUCTOR)


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.STUDENT)
    registered_for_credit = models.BooleanField(default=False)
    display_name = models.CharField(
        max_length=60, blank=True, help_text="Shown on leaderboards instead of the real name."
    )
    show_real_name = models.BooleanField(default=False, help_text="The member agrees to show her real name.")
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "course"], name="one_membership_per_course")]
        ordering = ["course", "role", "user__email"]

    def __str__(self) -> str:
        return f"{self.user.email} in {self.course.slug} as {self.role}"

    @property
    def is_staff_role(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def public_name(self) -> str:
        """The name others may see: her chosen display name, her real name only with consent."""
        if self.show_real_name and self.user.get_full_name():
            return self.user.get_full_name()
        return self.display_name or f"Student {self.pk}"


class Deadline(models.Model):
    class LatePolicy(models.TextChoices):
        REFUSE = "refuse", "Refuse late work"
        FLAG = "flag", "Accept and flag as late"

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="deadlines")
    key = models.SlugField(max_length=60, help_text="Stable name used by labs and projects, e.g. lab1.")
    title = models.CharField(max_length=200)
    due_at = models.DateTimeField()
    extended_until = models.DateTimeField(
        null=True, blank=True, help_text="A course-wide extension; the page shows 'extended deadline!'."
    )
    late_policy = models.CharField(max_length=8, choices=LatePolicy.choices, default=LatePolicy.REFUSE)
    grace_minutes = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["course", "key"], name="unique_deadline_key")]
        ordering = ["due_at"]

    def __str__(self) -> str:
        return f"{self.title} ({self.course.slug})"

    def clean(self) -> None:
        if self.extended_until and self.due_at and self.extended_until <= self.due_at:
            raise ValidationError(
                {"extended_until": "A course-wide extension must be later than the original deadline."}
            )

    @property
    def course_due_at(self):
        """The deadline for everyone: the course-wide extension when there is one."""
        return self.extended_until or self.due_at


class Extension(models.Model):
    deadline = models.ForeignKey(Deadline, on_delete=models.CASCADE, related_name="extensions")
    member = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="extensions")
    until = models.DateTimeField()
    reason = models.CharField(max_length=300, blank=True)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="extensions_granted"
    )
    granted_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-granted_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["deadline", "member"],
                condition=Q(revoked_at__isnull=True),
                name="one_active_extension",
            )
        ]

    def __str__(self) -> str:
        return f"{self.member.user.email}: {self.deadline.key} until {self.until:%Y-%m-%d %H:%M}"


class AuditEntry(models.Model):
    """Who changed what and when: deadlines, extensions, releases, freezes, re-runs, awards."""

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="audit_entries")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    action = models.CharField(max_length=60)
    target = models.CharField(max_length=200)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action} {self.target}"


class InstitutionIdentity(models.Model):
    """The institution account (an OpenID Connect issuer and its ``sub``) a platform account signs in with.

    One per account: a second ``sub`` never takes over an account already linked (courses/identities.py).
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="institution_identity")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    linked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="one_account_per_institution_sub")]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"
