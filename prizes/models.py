"""Judging rounds (rubric, judges, conflicts, scores, talks) and prizes with their confirmed awards."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from courses.models import Course, Membership


class Round(models.Model):
    """One judging round: a panel scores one kind of entry on one rubric between two moments."""

    class Kind(models.TextChoices):
        PRESENTATION = "presentation", "Proposal presentations (project groups)"
        LAB = "lab", "Lab competition entries (the lab's complete entries)"

    class Normalisation(models.TextChoices):
        ZSCORE = "zscore", "Each judge's totals as z-scores, then the mean"
        MEAN = "mean", "Plain mean of the judges' totals"

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="judging_rounds")
    title = models.CharField(max_length=150)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PRESENTATION)
    lab = models.ForeignKey(
        "labs.Lab",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="judging_rounds",
        help_text="For lab rounds: the lab whose complete competition entries are judged.",
    )
    instructions = models.TextField(blank=True, max_length=3000)
    scale_min = models.SmallIntegerField(default=1)
    scale_max = models.SmallIntegerField(default=5)
    opens_at = models.DateTimeField()
    closes_at = models.DateTimeField()
    normalisation = models.CharField(max_length=8, choices=Normalisation.choices, default=Normalisation.ZSCORE)
    current_entry = models.ForeignKey(
        "Entry", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", help_text="Now presenting."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["course", "opens_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(scale_min__lt=models.F("scale_max")), name="round_scale_ordered"),
            models.CheckConstraint(condition=Q(opens_at__lt=models.F("closes_at")), name="round_opens_before_close"),
            models.CheckConstraint(
                condition=Q(kind="presentation") | Q(lab__isnull=False), name="lab_round_names_its_lab"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.course.slug})"

    def clean(self) -> None:
        if self.scale_min is not None and self.scale_max is not None and self.scale_min >= self.scale_max:
            raise ValidationError({"scale_max": "The top of the scale must be above its bottom."})
        if self.opens_at and self.closes_at and self.opens_at >= self.closes_at:
            raise ValidationError({"closes_at": "A round must close after it opens."})
        if self.kind == self.Kind.LAB and self.lab_id is None:
            raise ValidationError({"lab": "A lab round needs the lab whose entries it judges."})
        if self.lab_id and self.course_id and self.lab.course_id != self.course_id:
            raise ValidationError({"lab": "That lab belongs to another course."})

    def is_open(self, at) -> bool:
        return self.opens_at <= at < self.closes_at

    def is_closed(self, at) -> bool:
        return at >= self.closes_at


class Criterion(models.Model):
    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="criteria")
    name = models.CharField(max_length=80)
    description = models.CharField(max_length=300, blank=True)
    weight = models.FloatField(default=1.0, validators=[MinValueValidator(0.0)])
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["round", "position", "id"]
        verbose_name_plural = "criteria"
        constraints = [
            models.UniqueConstraint(fields=["round", "name"], name="unique_criterion_name"),
            models.CheckConstraint(condition=Q(weight__gte=0), name="criterion_weight_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (x{self.weight:g})"


class Entry(models.Model):
    """What is judged: a project group, or a student's competition entry to the round's lab."""

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="entries")
    group = models.ForeignKey(
        "projects.Group", on_delete=models.CASCADE, null=True, blank=True, related_name="judging_entries"
    )
    member = models.ForeignKey(
        Membership,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="judging_entries",
        help_text="For lab rounds: the student whose entry it is.",
    )
    lab_entry = models.ForeignKey(
        "labs.LabEntry",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="judging_entries",
        help_text="For lab rounds: her entry to the lab (submission, write-up, notebook).",
    )
    # Before lab entries, a lab round judged one nominated sample; kept as the record of what was nominated.
    submission = models.ForeignKey(
        "labs.Submission", on_delete=models.CASCADE, null=True, blank=True, related_name="judging_entries"
    )
    sample_index = models.PositiveSmallIntegerField(null=True, blank=True)
    title = models.CharField(max_length=200, blank=True)
    position = models.PositiveIntegerField(default=0, help_text="Presentation order.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["round", "position", "id"]
        verbose_name_plural = "entries"
        constraints = [
            models.UniqueConstraint(
                fields=["round", "group"], condition=Q(group__isnull=False), name="one_entry_per_group"
            ),
            models.UniqueConstraint(
                fields=["round", "member"], condition=Q(member__isnull=False), name="one_nomination_per_student"
            ),
            models.CheckConstraint(
                condition=Q(group__isnull=False, member__isnull=True, lab_entry__isnull=True)
                | Q(group__isnull=True, member__isnull=False, lab_entry__isnull=False),
                name="entry_is_group_or_lab_entry",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.display_title} in {self.round.title}"

    @property
    def display_title(self) -> str:
        if self.group_id:
            return self.group.title or self.group.name
        return self.title or f"Entry {self.pk}"

    @property
    def public_name(self) -> str:
        """The name others may see: the group's name, or the student's display name."""
        return self.group.name if self.group_id else self.member.public_name


class JudgeAssignment(models.Model):
    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="assignments")
    judge = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="judging_assignments")
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    assigned_at = models.DateTimeField(auto_now_add=True)
    conflicts_declared_at = models.DateTimeField(
        null=True, blank=True, help_text="Until she has gone through the entry list, she sees no materials."
    )

    class Meta:
        ordering = ["round", "id"]
        constraints = [models.UniqueConstraint(fields=["round", "judge"], name="one_assignment_per_judge")]

    def __str__(self) -> str:
        return f"{self.judge.user.email} judges {self.round.title}"


class Conflict(models.Model):
    judge = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="judging_conflicts")
    entry = models.ForeignKey(Entry, on_delete=models.CASCADE, related_name="conflicts")
    note = models.CharField(max_length=200, blank=True)
    declared_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["entry", "id"]
        constraints = [models.UniqueConstraint(fields=["judge", "entry"], name="one_conflict_per_judge_entry")]

    def __str__(self) -> str:
        return f"{self.judge.user.email} conflicted with entry {self.entry_id}"


class Score(models.Model):
    """One judge's mark of one entry on one criterion; its own row, so two judges never overwrite each other."""

    judge = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="judging_scores")
    entry = models.ForeignKey(Entry, on_delete=models.CASCADE, related_name="scores")
    criterion = models.ForeignKey(Criterion, on_delete=models.CASCADE, related_name="scores")
    value = models.SmallIntegerField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["entry", "judge", "criterion"]
        constraints = [
            models.UniqueConstraint(fields=["judge", "entry", "criterion"], name="one_score_per_judge_entry_criterion")
        ]

    def __str__(self) -> str:
        return f"{self.value} on {self.criterion.name} for entry {self.entry_id}"


class Talk(models.Model):
    """One run of the talk clock; the server's started_at is the single truth every screen counts from."""

    entry = models.ForeignKey(Entry, on_delete=models.CASCADE, related_name="talks")
    talk_seconds = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    stopped_at = models.DateTimeField(null=True, blank=True)
    overrun_seconds = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"talk of entry {self.entry_id} at {self.started_at:%H:%M:%S}"


class Prize(models.Model):
    class Category(models.TextChoices):
        LAB = "lab", "Lab competition (private leaderboard)"
        ROUND = "round", "Judged round (final project or lab entries)"

    class Ranking(models.TextChoices):
        JUDGES = "judges", "By the judges' normalised result"
        METRIC = "metric", "By the lab's metric (private split)"
        WEIGHTED = "weighted", "By a stated weighting of the judges' result and the metric's z-score"

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="prizes")
    title = models.CharField(max_length=150)
    description = models.TextField(blank=True, max_length=3000)
    sponsor = models.CharField(max_length=150, blank=True)
    places = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    category = models.CharField(max_length=8, choices=Category.choices)
    lab = models.ForeignKey("labs.Lab", on_delete=models.PROTECT, null=True, blank=True, related_name="prizes")
    round = models.ForeignKey(Round, on_delete=models.PROTECT, null=True, blank=True, related_name="prizes")
    registered_only = models.BooleanField(
        null=True,
        blank=True,
        help_text="Only students registered for credit may win. Empty: the default of the category "
        "(project groups: required; lab entries: anyone enrolled).",
    )
    counts_late_work = models.BooleanField(
        default=False, help_text="Lab prizes: rank late submissions too (by default only on-time work can win)."
    )
    ranking = models.CharField(
        max_length=8,
        choices=Ranking.choices,
        default=Ranking.JUDGES,
        help_text="Prizes of lab rounds: what ranks the entries (presentation rounds rank by the judges).",
    )
    metric_weight = models.FloatField(
        null=True,
        blank=True,
        help_text="Weighted ranking: the share of the metric's z-score, from 0 to 1; "
        "the judges' normalised result takes the rest.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["course", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(category="lab", lab__isnull=False, round__isnull=True)
                | Q(category="round", round__isnull=False, lab__isnull=True),
                name="prize_source_matches_category",
            ),
            models.CheckConstraint(condition=Q(places__gte=1), name="prize_has_a_place"),
            models.CheckConstraint(
                condition=~Q(ranking="weighted") | Q(metric_weight__gte=0, metric_weight__lte=1),
                name="weighted_prize_states_its_weight",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        if self.ranking == self.Ranking.JUDGES:
            self.metric_weight = None
            return
        if self.category != self.Category.ROUND or self.round_id is None or self.round.kind != Round.Kind.LAB:
            raise ValidationError({"ranking": "Only a prize of a lab round can rank by the lab's metric."})
        if self.ranking == self.Ranking.METRIC:
            self.metric_weight = None
            return
        if self.metric_weight is None or not 0 <= self.metric_weight <= 1:
            raise ValidationError({"metric_weight": "State the metric's share of the weighting, from 0 to 1."})
        if self.round.normalisation != Round.Normalisation.ZSCORE:
            raise ValidationError(
                {"ranking": "A weighting adds z-scores: the round must combine its judges as z-scores."}
            )

    @property
    def ranking_statement(self) -> str:
        """How the winners were ranked, in words for the winners page."""
        from prizes.ranking import prize_ranking_statement

        return prize_ranking_statement(self)

    @property
    def requires_registration(self) -> bool:
        if self.registered_only is not None:
            return self.registered_only
        return self.category == self.Category.ROUND and self.round.kind == Round.Kind.PRESENTATION


class Decision(models.Model):
    """A TA's confirmation of a prize's winners, with the ranking it was computed from."""

    prize = models.ForeignKey(Prize, on_delete=models.CASCADE, related_name="decisions")
    confirmed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    confirmed_at = models.DateTimeField(auto_now_add=True)
    snapshot = models.JSONField(help_text="The computed ranking with eligibility, as confirmed.")
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["prize", "-confirmed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.prize.title} confirmed {self.confirmed_at:%Y-%m-%d %H:%M}"


class Award(models.Model):
    """One place of a confirmed decision; the latest decision of a prize is what the public page shows."""

    decision = models.ForeignKey(Decision, on_delete=models.CASCADE, related_name="awards")
    place = models.PositiveSmallIntegerField()
    key = models.CharField(max_length=60, help_text="Stable identity of the winner (group:N, member:N).")
    group = models.ForeignKey("projects.Group", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    member = models.ForeignKey(Membership, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    entry = models.ForeignKey(Entry, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    score = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["decision", "place"]
        constraints = [models.UniqueConstraint(fields=["decision", "place"], name="one_award_per_place")]

    def __str__(self) -> str:
        return f"place {self.place} of {self.decision.prize.title}"

    @property
    def public_name(self) -> str:
        if self.group_id:
            return self.group.name
        if self.member_id:
            return self.member.public_name
        return "(withdrawn)"
