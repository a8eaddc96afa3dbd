from django.contrib import admin

from courses.models import AuditEntry, Course, Deadline, Extension, Membership


@admin.register(Course)
class CourseAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "term", "time_zone")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "course", "role", "registered_for_credit", "display_name")
    list_filter = ("course", "role", "registered_for_credit")
    search_fields = ("user__email", "display_name")
    raw_id_fields = ("user",)


@admin.register(Deadline)
class DeadlineAdmin(admin.ModelAdmin):
    list_display = ("title", "course", "key", "due_at", "extended_until", "late_policy", "grace_minutes")
    list_filter = ("course",)


@admin.register(Extension)
class ExtensionAdmin(admin.ModelAdmin):
    list_display = ("member", "deadline", "until", "granted_by", "revoked_at")
    raw_id_fields = ("member",)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("at", "course", "actor", "action", "target")
    list_filter = ("course", "action")
    readonly_fields = [field.name for field in AuditEntry._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
