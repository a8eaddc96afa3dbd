"""Final projects: groups with their proposal and slides (Option 1), and graded paper reviews (Option 2)."""

import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from courses.models import Course, Membership

GROUP_NAME_MAX = 60
TITLE_MAX = 150
ABSTRACT_MAX = 1500
RUBRIC_MIN, RUBRIC_MAX = 1, 5
FEEDBACK_MAX = 5000
REGRADE_REASON_MAX = 1000

# Keys of the courses Deadline rows this app reads; a course without one has no such limit.
GROUPS_DEADLINE = "project-groups"
SLIDES_DEADLINE = "project-slides"
REVIEW_DEADLINE = "paper-review"


def _private_pdf_name(folder: str) -> str:
    # Unguessable, and free of anything the student typed: files are only reached through checked views anyway.
    return f"projects/{folder}/{secrets.token_urlsafe(24)}.pdf"


def slides_upload_to(instance, filename: str) -> str:
    return _private_pdf_name("slides")


def review_upload_to(instance, filename: str) -> str:
    return _private_pdf_name("reviews")


class ProjectSettings(models.Model):
    """What a course allows beyond the defaults; a course without a row uses the field defaults."""

    course = models.OneToOneField(Course, on_delete=models.CASCADE, related_name="project_settings")
    allow_both_options = models.BooleanField(
        default=False, help_text="Let a student be in a proposal group and also hand in a paper review."
    )

    class Meta:
        verbose_name_plural = "project settings"

    def __str__(self) -> str:
        return f"Project settings of {self.course.slug}"


class Group(models.Model):
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="project_groups")
    name = models.CharField(max_length=GROUP_NAME_MAX)
    title = models.CharField(max_length=TITLE_MAX, blank=True)
    abstract = models.TextField(max_length=ABSTRACT_MAX, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The registration moment that prize eligibility is judged on.
    created_at = models.DateTimeField(default=timezone.now)
    presentation_order = models.PositiveIntegerField(null=True, blank=True)
    presented_at = models.DateTimeField(null=True, blank=True)
    presented_marked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["course", "presentation_order", "created_at"]
        constraints = [
            models.UniqueConstraint(Lower("name"), "course", name="unique_group_name_per_course"),
            models.UniqueConstraint(
                fields=["course", "presentation_order"],
                condition=Q(presentation_order__isnull=False),
                name="unique_presentation_slot",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.course.slug})"

    def current_slides(self):
        return self.slides.order_by("-uploaded_at", "-id").first()


class GroupMember(models.Model):
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="members")
    # One-to-one: a membership belongs to one course, so this is "at most one group per student per course".
    member = models.OneToOneField(Membership, on_delete=models.CASCADE, related_name="project_group_member")
    joined_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["joined_at", "id"]

    def __str__(self) -> str:
        return f"{self.member.user.email} in {self.group.name}"


class Invitation(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        CANCELLED = "cancelled", "Cancelled"

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="invitations")
    invitee = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="project_invitations")
    invited_by = models.ForeignKey(Membership, on_delete=models.SET_NULL, null=True, related_name="+")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    responded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["group", "invitee"], condition=Q(status="pending"), name="one_pending_invitation"
            )
        ]

    def __str__(self) -> str:
        return f"{self.invitee.user.email} to {self.group.name} ({self.status})"


class SlidesVersion(models.Model):
    """Every upload is kept; the newest is the group's current slides."""

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="slides")
    file = models.FileField(upload_to=slides_upload_to, max_length=200)
    original_name = models.CharField(max_length=200)
    size = models.PositiveBigIntegerField()
    pages = models.PositiveIntegerField()
    uploaded_by = models.ForeignKey(Membership, on_delete=models.SET_NULL, null=True, related_name="+")
    uploaded_at = models.DateTimeField(default=timezone.now)
    late = models.BooleanField(default=False)

    class Meta:
        ordering = ["-uploaded_at", "-id"]

    def __str__(self) -> str:
        return f"Slides of {self.group.name} at {self.uploaded_at:%Y-%m-%d %H:%M}"


rubric_score = [MinValueValidator(RUBRIC_MIN), MaxValueValidator(RUBRIC_MAX)]


class PaperReview(models.Model):
    member = models.OneToOneField(Membership, on_delete=models.CASCADE, related_name="paper_review")
    paper_title = models.CharField(max_length=300)
    paper_authors = models.CharField(max_length=500)
    paper_link = models.CharField(max_length=500, help_text="A link to the paper or its arXiv id.")
    file = models.FileField(upload_to=review_upload_to, max_length=200)
    original_name = models.CharField(max_length=200)
    size = models.PositiveBigIntegerField()
    submitted_at = models.DateTimeField(default=timezone.now)
    late = models.BooleanField(default=False)

    clarity = models.PositiveSmallIntegerField(null=True, blank=True, validators=rubric_score)
    technical = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=rubric_score, verbose_name="technical communication"
    )
    passed = models.BooleanField(null=True, blank=True)
    feedback = models.TextField(max_length=FEEDBACK_MAX, blank=True)
    graded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    graded_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)

    regrade_reason = models.TextField(max_length=REGRADE_REASON_MAX, blank=True)
    regrade_requested_at = models.DateTimeField(null=True, blank=True)
    regrade_resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["submitted_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(clarity__isnull=True) | Q(clarity__gte=RUBRIC_MIN, clarity__lte=RUBRIC_MAX),
                name="review_clarity_in_scale",
            ),
            models.CheckConstraint(
                condition=Q(technical__isnull=True) | Q(technical__gte=RUBRIC_MIN, technical__lte=RUBRIC_MAX),
                name="review_technical_in_scale",
            ),
        ]

    def __str__(self) -> str:
        return f"Review by {self.member.user.email}: {self.paper_title}"

    @property
    def graded(self) -> bool:
        return self.graded_at is not None

    @property
    def released(self) -> bool:
        return self.released_at is not None

    @property
    def regrade_pending(self) -> bool:
        return self.regrade_requested_at is not None and self.regrade_resolved_at is None

    @property
    def state(self) -> str:
        if self.regrade_pending:
            return "regrade requested"
        if self.released:
            return "passed" if self.passed else "not passed"
        if self.graded:
            return "graded, not released"
        return "awaiting grading"
