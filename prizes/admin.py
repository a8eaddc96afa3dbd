"""Admin pages for every judging and prizes model."""

from django.contrib import admin

from prizes.models import Award, Conflict, Criterion, Decision, Entry, JudgeAssignment, Prize, Round, Score, Talk


class CriterionInline(admin.TabularInline):
    model = Criterion
    extra = 0


@admin.register(Round)
class RoundAdmin(admin.ModelAdmin):
    list_display = ("title", "course", "kind", "opens_at", "closes_at", "normalisation")
    list_filter = ("course", "kind")
    inlines = [CriterionInline]
    raw_id_fields = ("current_entry",)


@admin.register(Criterion)
class CriterionAdmin(admin.ModelAdmin):
    list_display = ("name", "round", "weight", "position")


@admin.register(Entry)
class EntryAdmin(admin.ModelAdmin):
    list_display = ("__str__", "round", "position", "group", "member")
    list_filter = ("round",)
    raw_id_fields = ("group", "member", "submission")


@admin.register(JudgeAssignment)
class JudgeAssignmentAdmin(admin.ModelAdmin):
    list_display = ("judge", "round", "assigned_at", "conflicts_declared_at")
    list_filter = ("round",)
    raw_id_fields = ("judge",)


@admin.register(Conflict)
class ConflictAdmin(admin.ModelAdmin):
    list_display = ("judge", "entry", "declared_at")
    raw_id_fields = ("judge", "entry")


@admin.register(Score)
class ScoreAdmin(admin.ModelAdmin):
    list_display = ("judge", "entry", "criterion", "value", "updated_at")
    list_filter = ("entry__round",)
    raw_id_fields = ("judge", "entry", "criterion")


@admin.register(Talk)
class TalkAdmin(admin.ModelAdmin):
    list_display = ("entry", "started_at", "stopped_at", "talk_seconds", "overrun_seconds")
    raw_id_fields = ("entry",)


@admin.register(Prize)
class PrizeAdmin(admin.ModelAdmin):
    list_display = ("title", "course", "category", "places", "sponsor")
    list_filter = ("course", "category")


class AwardInline(admin.TabularInline):
    model = Award
    extra = 0
    raw_id_fields = ("group", "member", "entry")


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    list_display = ("prize", "confirmed_by", "confirmed_at")
    inlines = [AwardInline]


@admin.register(Award)
class AwardAdmin(admin.ModelAdmin):
    list_display = ("decision", "place", "key", "score")
    raw_id_fields = ("group", "member", "entry")
