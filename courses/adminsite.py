"""The Django admin as the platform operator's tool: superusers only, and a plain refusal for everyone else."""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


class OperatorAdminSite(admin.AdminSite):
    """Course staff do their work on the course's own pages, which apply the course's rules and audit log; the admin
    bypasses both, so it belongs to whoever runs the platform (a superuser), not to a role in a course."""

    site_header = "Course platform: operator's admin"

    def has_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def login(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        # Django would show a signed-in TA its sign-in form again with "authenticated but not authorized"; she is
        # signed in correctly, she is only in the wrong place, so say so and send her to her course.
        if request.user.is_authenticated and not self.has_permission(request):
            return render(request, "courses/admin_refused.html", status=403)
        return super().login(request, extra_context)


class OperatorAdminConfig(AdminConfig):
    default_site = "courses.adminsite.OperatorAdminSite"
