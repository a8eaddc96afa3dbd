"""Django admin for final projects; files are listed by name only (they are served through checked views)."""

from django.contrib import admin

from projects.models import Group as ProjectGroup
from projects.models import GroupMember, Invitation, PaperReview, ProjectSettings, SlidesVersion


@admin.register(ProjectSettings)
class ProjectSettingsAdmin(admin.ModelAdmin):
    list_display = ["course", "allow_both_options"]


class GroupMemberInline(admin.TabularInline):
    model = GroupMember
    extra = 0
    raw_id_fields = ["member"]


@admin.register(ProjectGroup)
class GroupAdmin(admin.ModelAdmin):
    list_display = ["name", "course", "created_at", "presentation_order", "presented_at"]
    list_filter = ["course"]
    search_fields = ["name", "title", "members__member__user__email"]
    inlines = [GroupMemberInline]
    readonly_fields = ["created_by"]


@admin.register(GroupMember)
class GroupMemberAdmin(admin.ModelAdmin):
    list_display = ["member", "group", "joined_at"]
    list_filter = ["group__course"]
    raw_id_fields = ["member", "group"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["invitee", "group", "status", "created_at", "responded_at"]
    list_filter = ["status", "group__course"]
    raw_id_fields = ["invitee", "invited_by", "group"]


@admin.register(SlidesVersion)
class SlidesVersionAdmin(admin.ModelAdmin):
    list_display = ["group", "uploaded_at", "pages", "size", "late"]
    list_filter = ["group__course", "late"]
    readonly_fields = ["file", "original_name", "size", "pages", "uploaded_by", "uploaded_at"]


@admin.register(PaperReview)
class PaperReviewAdmin(admin.ModelAdmin):
    list_display = ["member", "paper_title", "submitted_at", "passed", "graded_at", "released_at"]
    list_filter = ["member__course", "passed", "late"]
    search_fields = ["member__user__email", "paper_title"]
    readonly_fields = ["file", "original_name", "size", "submitted_at"]
    raw_id_fields = ["member", "graded_by"]
