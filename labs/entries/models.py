"""What a lab's entry must hold (set by staff), a student's entry, and the files she attached to it."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from courses.models import Deadline, Membership

MB = 1024 * 1024


class Part(models.TextChoices):
    NOTEBOOK = "notebook", "Notebook (.ipynb)"
    REPORT = "report", "PDF report"
    DESCRIPTION = "description", "Description"
    DISCUSSION = "discussion", "Discussion"
    SONG = "song", "Audio recording of the song"
    PLOT = "plot", "Image of the bar plot"


FILE_PARTS = (Part.NOTEBOOK, Part.REPORT, Part.SONG, Part.PLOT)
TEXT_PARTS = (Part.DESCRIPTION, Part.DISCUSSION)


class EntryKit(models.Model):
    """Per lab, what an entry needs, how large and of which types its files may be, and when it is due."""

    lab = models.OneToOneField("labs.Lab", on_delete=models.CASCADE, related_name="entry_kit")
    parts = models.JSONField(default=list, blank=True, help_text='The parts an entry needs, e.g. ["notebook"].')
    deadline = models.ForeignKey(
        Deadline,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="entry_kits",
        help_text="The entry deadline (extensions apply as for any deadline); empty: the lab's own deadline.",
    )
    max_notebook_bytes = models.PositiveBigIntegerField(default=20 * MB)
    max_report_bytes = models.PositiveBigIntegerField(default=10 * MB)
    max_song_bytes = models.PositiveBigIntegerField(default=20 * MB)
    max_plot_bytes = models.PositiveBigIntegerField(default=5 * MB)
    max_text_chars = models.PositiveIntegerField(default=6000)
    song_types = models.CharField(max_length=60, default="wav,mp3,ogg,flac", help_text="Comma-separated formats.")
    plot_types = models.CharField(max_length=60, default="png,jpeg", help_text="Comma-separated formats.")

    def __str__(self) -> str:
        return f"entry kit of {self.lab}"

    def max_bytes(self, part: str) -> int:
        return getattr(self, f"max_{part}_bytes")

    def types(self, part: str) -> list[str]:
        raw = {Part.SONG: self.song_types, Part.PLOT: self.plot_types}.get(part, "")
        return [name.strip() for name in raw.split(",") if name.strip()]


class LabEntry(models.Model):
    """A student's entry to a lab's competition, independent of any judging round."""

    lab = models.ForeignKey("labs.Lab", on_delete=models.CASCADE, related_name="entries")
    member = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="lab_entries")
    submission = models.ForeignKey(
        "labs.Submission", on_delete=models.PROTECT, null=True, blank=True, related_name="entries"
    )
    title = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    discussion = models.TextField(blank=True)
    late = models.BooleanField(default=False, help_text="Changed after her entry deadline (late work accepted).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["lab", "member"]
        verbose_name_plural = "lab entries"
        constraints = [models.UniqueConstraint(fields=["lab", "member"], name="one_entry_per_student_per_lab")]

    def __str__(self) -> str:
        return f"entry of {self.member.public_name} to {self.lab}"


class EntryFile(models.Model):
    """One file part of an entry in private storage; a notebook also keeps its sanitised rendering."""

    entry = models.ForeignKey(LabEntry, on_delete=models.CASCADE, related_name="files")
    part = models.CharField(max_length=12, choices=[(p.value, p.label) for p in FILE_PARTS])
    key = models.CharField(max_length=300, help_text="Its key in private storage.")
    name = models.CharField(max_length=200, help_text="The name she uploaded it under (shown, never used as a path).")
    extension = models.CharField(max_length=8)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    rendered_key = models.CharField(max_length=300, blank=True, help_text="Notebooks: the sanitised HTML.")
    findings = models.JSONField(default=list, blank=True, help_text="Notebooks: credentials found in code cells.")
    findings_confirmed_at = models.DateTimeField(null=True, blank=True)
    last_cell = models.PositiveIntegerField(null=True, blank=True, help_text="Notebooks: its last code cell's number.")
    reported_loglikelihood = models.FloatField(
        null=True, blank=True, help_text='Lab 3 notebooks: the "Yoda test loglikelihood" its last cell printed.'
    )
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["entry", "part"]
        constraints = [
            models.UniqueConstraint(fields=["entry", "part"], name="one_file_per_entry_part"),
            models.CheckConstraint(condition=~Q(key=""), name="entry_file_has_key"),
        ]

    def __str__(self) -> str:
        return f"{self.part} of entry {self.entry_id}"

    @property
    def awaiting_confirmation(self) -> bool:
        return bool(self.findings) and self.findings_confirmed_at is None
