"""Labs, hidden datasets, submissions, evaluations and API tokens."""

import hashlib
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from courses.models import Course, Deadline, Membership


class LabKind(models.TextChoices):
    MUSIC = "music", "Music generation"
    VISION = "vision", "Computer vision"
    LLM = "llm", "Large language models"


class Direction(models.TextChoices):
    MIN = "min", "Lower is better"
    MAX = "max", "Higher is better"


class EvaluationDataset(models.Model):
    """A registered hidden set: an archive in private storage, identified by the hash of its manifest."""

    kind = models.CharField(max_length=16, choices=LabKind.choices)
    name = models.CharField(max_length=120)
    manifest_hash = models.CharField(max_length=64, unique=True)
    archive = models.FileField(upload_to="datasets/", max_length=300)
    demo_only = models.BooleanField(default=False)
    description = models.TextField(blank=True)
    registered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    registered_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}, {self.manifest_hash[:12]})"


class BaseModel(models.Model):
    """A Lab 3 base model of a course: provisioned on the grading nodes (never downloaded), its config.json here.

    The module table LoRA may target is derived from the config by PEFT, in a limited child, when staff register
    it; upload checks read the table, and the grading node refuses a folder whose config hash differs.
    """

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="base_models")
    name = models.CharField(
        max_length=200, help_text="What an adapter names as its base_model_name_or_path, e.g. LiquidAI/LFM2-1.2B."
    )
    folder = models.CharField(
        max_length=300, help_text="Its folder on the grading nodes: a name under BASE_MODELS_DIR, or an absolute path."
    )
    model_type = models.CharField(max_length=60)
    config = models.JSONField(help_text="The config.json staff uploaded, as parsed.")
    config_sha256 = models.CharField(max_length=64, help_text="sha256 of the config.json bytes.")
    table = models.JSONField(help_text="The modules LoRA may target with their tensor shapes, derived by PEFT.")
    registered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    registered_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-registered_at"]
        constraints = [
            models.UniqueConstraint(fields=["course", "name", "config_sha256"], name="one_registration_per_base")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.model_type}, {self.config_sha256[:12]})"

    def registration(self) -> dict:
        """What the upload checks need of it."""
        return {"name": self.name, "config_sha256": self.config_sha256, "table": self.table}


class Lab(models.Model):
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="labs")
    slug = models.SlugField(max_length=60)
    kind = models.CharField(max_length=16, choices=LabKind.choices)
    number = models.PositiveSmallIntegerField()
    title = models.CharField(max_length=200)
    deadline = models.ForeignKey(Deadline, on_delete=models.PROTECT, related_name="labs")
    dataset = models.ForeignKey(EvaluationDataset, on_delete=models.PROTECT, null=True, blank=True, related_name="labs")
    daily_quota = models.PositiveSmallIntegerField(
        default=5, help_text="Submissions per student per day (course time)."
    )
    max_in_flight = models.PositiveSmallIntegerField(default=2, help_text="Evaluations a student may have waiting.")
    max_artifact_bytes = models.PositiveBigIntegerField(default=200 * 1024 * 1024)
    evaluator_options = models.JSONField(default=dict, blank=True, help_text="Passed to the grader as --option k=v.")
    primary_metric = models.CharField(max_length=40)
    primary_direction = models.CharField(max_length=3, choices=Direction.choices)
    tiebreak_metric = models.CharField(max_length=40)
    tiebreak_direction = models.CharField(max_length=3, choices=Direction.choices)
    private_released_at = models.DateTimeField(null=True, blank=True)
    frozen_at = models.DateTimeField(null=True, blank=True)
    expected_seconds = models.PositiveIntegerField(default=30, help_text="Typical evaluation time, for wait estimates.")
    device_class = models.CharField(
        max_length=120,
        blank=True,
        help_text="Rank only results of this device class (e.g. 'cpu' or 'cuda:NVIDIA H100 80GB HBM3'); empty: the "
        "class most of the lab's results have, so that a leaderboard never mixes classes.",
    )
    base_model = models.ForeignKey(
        BaseModel,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="labs",
        help_text="Lab 3: the base model adapters are trained on; results of another base are not ranked.",
    )
    time_limit_s = models.PositiveIntegerField(default=600, help_text="Wall clock of one evaluation in the sandbox.")
    memory_limit_mb = models.PositiveIntegerField(default=4096, help_text="Memory (and swap) of one evaluation.")

    class Meta:
        ordering = ["course", "number"]
        constraints = [models.UniqueConstraint(fields=["course", "slug"], name="unique_lab_slug")]

    def __str__(self) -> str:
        return f"Lab {self.number}: {self.title}"

    @property
    def queue(self) -> str:
        return settings.GRADING_QUEUES[self.kind]

    def check_options(self) -> dict:
        """The options the upload check of this lab reads: its evaluator options and its base model's table."""
        options = dict(self.evaluator_options or {})
        if self.base_model_id:
            options["base_model_registration"] = self.base_model.registration()
        return options

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from grader.registry import lab_row_problems

        problems = lab_row_problems(
            kind=self.kind,
            primary_metric=self.primary_metric,
            primary_direction=self.primary_direction,
            tiebreak_metric=self.tiebreak_metric,
            tiebreak_direction=self.tiebreak_direction,
        )
        if problems:
            raise ValidationError("; ".join(problems))


class Submission(models.Model):
    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="submissions")
    member = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="submissions")
    storage_prefix = models.CharField(max_length=120, unique=True)
    files = models.JSONField(help_text="[{name, sha256, size}] of the artifact's files in private storage.")
    sha256 = models.CharField(max_length=64, db_index=True, help_text="Identity: sha256 of the sorted (name, sha256).")
    size = models.PositiveBigIntegerField()
    received_at = models.DateTimeField(db_index=True, help_text="Stamped when the request arrived (server clock).")
    late = models.BooleanField(default=False)
    description = models.TextField(blank=True, max_length=4000)
    is_final = models.BooleanField(default=False)
    artifact_summary = models.JSONField(default=dict, blank=True)
    via_api = models.BooleanField(default=False)
    baseline_label = models.CharField(
        max_length=80,
        blank=True,
        help_text="Set for the staff's reference models: shown as a baseline row, never ranked.",
    )
    # Her own count in this lab, from 1: what she and the pages call the submission ("#3"), unlike the global id.
    number = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["member", "lab"], condition=Q(is_final=True), name="one_final_per_lab"),
            models.UniqueConstraint(
                fields=["lab", "member", "number"], condition=Q(number__gt=0), name="one_number_per_submission"
            ),
        ]
        indexes = [models.Index(fields=["lab", "member", "received_at"])]

    def __str__(self) -> str:
        return f"#{self.number} {self.lab.slug} by {self.member.user.email}"

    def save(self, *args, **kwargs):
        # Numbered when first stored; submit_artifact holds her membership row's lock, so two cannot take one number.
        if not self.number:
            latest = Submission.objects.filter(lab_id=self.lab_id, member_id=self.member_id).aggregate(
                models.Max("number")
            )["number__max"]
            self.number = (latest or 0) + 1
        super().save(*args, **kwargs)

    @staticmethod
    def new_prefix(lab: "Lab") -> str:
        return f"artifacts/{lab.course.slug}/{lab.slug}/{uuid.uuid4().hex}"


class EvaluationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ERROR = "error", "Platform error"


FINAL_STATES = (EvaluationStatus.SUCCEEDED, EvaluationStatus.FAILED, EvaluationStatus.ERROR)
ACTIVE_STATES = (EvaluationStatus.QUEUED, EvaluationStatus.RUNNING)


class Evaluation(models.Model):
    """One grading of a submission. Retries reuse it (attempt grows); a re-run or re-grade adds a new one."""

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="evaluations")
    status = models.CharField(max_length=10, choices=EvaluationStatus.choices, default=EvaluationStatus.QUEUED)
    attempt = models.PositiveSmallIntegerField(default=0)
    claim_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True, help_text="When the task message was last sent.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    metrics = models.JSONField(null=True, blank=True)
    groups = models.JSONField(null=True, blank=True)
    details = models.JSONField(null=True, blank=True)
    samples = models.JSONField(null=True, blank=True)
    public_score = models.FloatField(null=True, blank=True)
    private_score = models.FloatField(null=True, blank=True)
    public_tiebreak = models.FloatField(null=True, blank=True)
    private_tiebreak = models.FloatField(null=True, blank=True)
    judge_inputs = models.JSONField(
        null=True, blank=True, help_text="Generated answers kept for the course's LLM judge; staff-only, never shown."
    )
    log_tail = models.TextField(blank=True, help_text="Bounded, sanitised; shown to the student only for her faults.")
    staff_log = models.TextField(blank=True, help_text="Full bounded logs for TAs.")
    error_code = models.CharField(max_length=60, blank=True)
    error_message = models.TextField(blank=True)
    grader_version = models.CharField(max_length=40, blank=True)
    dataset_hash = models.CharField(max_length=64, blank=True)
    device_class = models.CharField(max_length=120, blank=True)
    base_model_sha256 = models.CharField(
        max_length=64, blank=True, help_text="sha256 of the config.json of the base model it was graded on (Lab 3)."
    )
    duration_s = models.FloatField(null=True, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "lease_expires_at"]),
            models.Index(fields=["status", "sent_at"]),
            # The leaderboard's scan (labs.ranking): newest succeeded result per submission, with every column the
            # ranking reads, so PostgreSQL answers from the index without reading the wide rows (logs, samples).
            models.Index(
                fields=["submission", "-id"],
                include=[
                    "public_score",
                    "private_score",
                    "public_tiebreak",
                    "private_tiebreak",
                    "device_class",
                    "finished_at",
                    "base_model_sha256",
                ],
                condition=Q(status="succeeded"),
                name="succeeded_newest_first",
            ),
        ]

    def __str__(self) -> str:
        return f"evaluation {self.pk} of submission {self.submission_id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATES


class ApiToken(models.Model):
    """A personal token for submitting from a notebook; only its hash is stored."""

    PREFIX = "cpt_"

    member = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=60)
    key_hash = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=12, help_text="First characters, to recognise the token.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…) of {self.member.user.email}"

    @classmethod
    def hash_key(cls, key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def generate_key(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)


class DeadlineReminder(models.Model):
    """That a student was reminded of a lab deadline, so the hourly reminder task writes to her once."""

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="reminders")
    member = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="+")
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["lab", "member"], name="one_reminder_per_lab")]

    def __str__(self) -> str:
        return f"reminder of {self.lab.slug} to member {self.member_id}"


# Entries live in their own module; imported here so that Django registers them with the labs app.
from labs.entries.models import EntryFile, EntryKit, LabEntry  # noqa: E402, F401
