"""URLs of the projects app, under /courses/<course_slug>/project/."""

from django.urls import path

from projects.views import completion, files, groups, reviews, schedule, staff_groups

app_name = "projects"

urlpatterns = [
    path("", groups.home, name="home"),
    path("group/", groups.group_create, name="group_create"),
    path("group/<int:pk>/invite/", groups.invite, name="invite"),
    path("group/<int:pk>/leave/", groups.leave, name="leave"),
    path("group/<int:pk>/proposal/", groups.proposal, name="proposal"),
    path("group/<int:pk>/slides/", groups.slides_upload, name="slides_upload"),
    path("invitations/<int:pk>/", groups.invitation_respond, name="invitation_respond"),
    path("invitations/<int:pk>/cancel/", groups.invitation_cancel, name="invitation_cancel"),
    path("slides/<int:pk>/", files.slides_file, name="slides_file"),
    path("review/", reviews.review, name="review"),
    path("review/regrade/", reviews.regrade, name="regrade"),
    path("review/<int:pk>/file/", files.review_file, name="review_file"),
    path("staff/", staff_groups.staff_home, name="staff_home"),
    path("staff/groups/<int:pk>/", staff_groups.staff_group, name="staff_group"),
    path("staff/groups/<int:pk>/add/", staff_groups.staff_add_member, name="staff_add_member"),
    path(
        "staff/groups/<int:pk>/remove/<int:member_pk>/",
        staff_groups.staff_remove_member,
        name="staff_remove_member",
    ),
    path("staff/groups/<int:pk>/extension/", staff_groups.staff_extension, name="staff_extension"),
    path("staff/groups/<int:pk>/presented/", staff_groups.staff_presented, name="staff_presented"),
    path("staff/schedule/", schedule.staff_schedule, name="staff_schedule"),
    path("staff/reviews/", reviews.staff_reviews, name="staff_reviews"),
    path("staff/reviews/<int:pk>/", reviews.staff_review, name="staff_review"),
    path("staff/reviews/<int:pk>/release/", reviews.staff_review_release, name="staff_review_release"),
    path("staff/completion/", completion.staff_completion, name="staff_completion"),
    path("staff/completion.csv", completion.staff_completion_csv, name="staff_completion_csv"),
    path("staff/scores.csv", completion.staff_scores_csv, name="staff_scores_csv"),
    path("staff/students/<int:member_pk>/", completion.staff_student, name="staff_student"),
]
