from django.urls import path

from courses import views

app_name = "courses"

urlpatterns = [
    path("<slug:course_slug>/", views.dashboard, name="dashboard"),
    path("<slug:course_slug>/profile/", views.profile, name="profile"),
    path("<slug:course_slug>/join/", views.join, name="join"),
    path("<slug:course_slug>/staff/roster/", views.roster, name="roster"),
    path("<slug:course_slug>/staff/roster/<int:pk>/", views.roster_member, name="roster_member"),
    path("<slug:course_slug>/staff/roster/<int:pk>/remove/", views.roster_remove, name="roster_remove"),
    path("<slug:course_slug>/staff/join-code/", views.join_code, name="join_code"),
    path("<slug:course_slug>/staff/deadlines/", views.deadlines, name="deadlines"),
    path("<slug:course_slug>/staff/deadlines/<slug:key>/", views.deadline_edit, name="deadline_edit"),
    path("<slug:course_slug>/staff/extensions/", views.extensions, name="extensions"),
    path(
        "<slug:course_slug>/staff/extensions/<int:pk>/revoke/",
        views.extension_revoke,
        name="extension_revoke",
    ),
    path("<slug:course_slug>/staff/audit/", views.audit_log, name="audit"),
]
