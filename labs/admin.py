from django.contrib import admin

from labs.models import ApiToken, DeadlineReminder, Evaluation, EvaluationDataset, Lab, Submission


@admin.register(Lab)
class LabAdmin(admin.ModelAdmin):
    list_display = ("title", "course", "kind", "number", "deadline", "dataset", "daily_quota", "frozen_at")
    list_filter = ("course", "kind")


@admin.register(EvaluationDataset)
class EvaluationDatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "manifest_hash", "demo_only", "registered_at")
    readonly_fields = ("manifest_hash",)


class EvaluationInline(admin.TabularInline):
    model = Evaluation
    extra = 0
    fields = ("status", "attempt", "public_score", "private_score", "error_code", "worker", "finished_at")
    readonly_fields = fields
    can_delete = False


@admin.register(Submission)
class SubmissionAdmin(admin.ModelAdmin):
    list_display = ("id", "lab", "member", "received_at", "late", "is_final", "baseline_label")
    list_filter = ("lab", "late", "is_final")
    search_fields = ("member__user__email", "sha256")
    raw_id_fields = ("member",)
    inlines = [EvaluationInline]


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    list_display = ("id", "submission", "status", "attempt", "public_score", "worker", "queued_at", "finished_at")
    list_filter = ("status", "submission__lab")
    raw_id_fields = ("submission", "requested_by")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "member", "hint", "expires_at", "revoked_at", "last_used_at")
    readonly_fields = ("key_hash", "hint")
    raw_id_fields = ("member",)


admin.site.register(DeadlineReminder)
