from django import forms
from django.contrib import admin

from courses import audit
from courses.models import AuditEntry, Course, Deadline, Extension, Membership
from courses.roles import OPERATOR, membership_change_refusal


@admin.register(Course)
class CourseAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "term", "time_zone")
    prepopulated_fields = {"slug": ("name",)}


class MembershipAdminForm(forms.ModelForm):
    """The admin is the platform operator's: an instructor's authority, but she too cannot change her own role."""

    admin_user = None  # set per request by MembershipAdmin.get_form

    class Meta:
        model = Membership
        fields = ["user", "course", "role", "registered_for_credit", "display_name", "show_real_name"]

    def clean(self):
        cleaned = super().clean()
        user = cleaned.get("user") or (self.instance.user if self.instance.pk else None)
        role = cleaned.get("role")
        if user is None or role is None:
            return cleaned
        before = Membership.objects.filter(pk=self.instance.pk).first() if self.instance.pk else None
        refusal = membership_change_refusal(
            actor_role=OPERATOR,
            about_herself=self.admin_user is not None and user.pk == self.admin_user.pk,
            email=user.email,
            before_role=before.role if before else None,
            after_role=role,
            other_fields_change=before is not None
            and before.registered_for_credit != cleaned.get("registered_for_credit"),
        )
        if refusal:
            raise forms.ValidationError({"role": refusal[0].upper() + refusal[1:] + "."})
        return cleaned


def _state(member: Membership) -> dict:
    return {"role": member.role, "registered": member.registered_for_credit}


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    form = MembershipAdminForm
    list_display = ("user", "course", "role", "registered_for_credit", "display_name")
    list_filter = ("course", "role", "registered_for_credit")
    search_fields = ("user__email", "display_name")
    raw_id_fields = ("user",)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.admin_user = request.user
        return form

    def get_readonly_fields(self, request, obj=None):
        # A membership moved to another person or course would dodge the audit trail of both; add a new one.
        return ("user", "course") if obj is not None else ()

    def save_model(self, request, obj, form, change):
        before = Membership.objects.filter(pk=obj.pk).first() if change else None
        super().save_model(request, obj, form, change)
        if before is None:
            audit.record(
                course=obj.course, actor=request.user, action="member.add", target=obj.user.email, after=_state(obj)
            )
        elif _state(before) != _state(obj):
            audit.record(
                course=obj.course,
                actor=request.user,
                action="member.update",
                target=obj.user.email,
                before=_state(before),
                after=_state(obj),
            )

    def delete_model(self, request, obj):
        self.delete_queryset(request, Membership.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        for member in queryset.select_related("user", "course"):
            audit.record(
                course=member.course,
                actor=request.user,
                action="member.remove",
                target=member.user.email,
                before=_state(member),
            )
        super().delete_queryset(request, queryset)


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
