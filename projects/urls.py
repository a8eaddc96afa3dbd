"""URLs of the projects app, under /courses/<course_slug>/project/."""

from django.urls import path

from projects import views

app_name = "projects"

urlpatterns = [
    path("", views.home, name="home"),
    path("group/", views.group_create, name="group_create"),
    path("group/<int:pk>/invite/", views.invite, name="invite"),
    path("group/<int:pk>/leave/", views.leave, name="leave"),
    path("group/<int:pk>/proposal/", views.proposal, name="proposal"),
    path("group/<int:pk>/slides/", views.slides_upload, name="slides_upload"),
    path("invitations/<int:pk>/", views.invitation_respond, name="invitation_respond"),
    path("invitations/<int:pk>/cancel/", views.invitation_cancel, name="invitation_cancel"),
    path("slides/<int:pk>/", views.slides_file, name="slides_file"),
    path("review/", views.review, name="review"),
    path("review/regrade/", views.regrade, name="regrade"),
    path("review/<int:pk>/file/", views.review_file, name="review_file"),
    path("staff/", views.staff_home, name="staff_home"),
    path("staff/groups/<int:pk>/", views.staff_group, name="staff_group"),
    path("staff/groups/<int:pk>/add/", views.staff_add_member, name="staff_add_member"),
    path("staff/groups/<int:pk>/remove/<int:member_pk>/", views.staff_remove_member, name="staff_remove_member"),
    path("staff/groups/<int:pk>/extension/", views.staff_extension, name="staff_extension"),
    path("staff/groups/<int:pk>/presented/", views.staff_presented, name="staff_presented"),
    path("staff/schedule/", views.staff_schedule, name="staff_schedule"),
    path("staff/reviews/", views.staff_reviews, name="staff_reviews"),
    path("staff/reviews/<int:pk>/", views.staff_review, name="staff_review"),
    path("staff/reviews/<int:pk>/release/", views.staff_review_release, name="staff_review_release"),
    path("staff/completion/", views.staff_completion, name="staff_completion"),
    path("staff/completion.csv", views.staff_completion_csv, name="staff_completion_csv"),
]
