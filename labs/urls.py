from django.urls import path

from labs import final_views, queue_views, views
from labs.entries import views as entry_views

app_name = "labs"

urlpatterns = [
    path("", views.index, name="index"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token_revoke"),
    path("grader.pyz", views.grader_download, name="grader_download"),
    path("staff/queue/", queue_views.queue, name="queue"),
    path("staff/evaluations/<int:pk>/", queue_views.evaluation_detail, name="evaluation"),
    path("staff/submissions/<int:pk>/rerun/", queue_views.rerun, name="rerun"),
    path("<slug:lab_slug>/", views.lab_page, name="lab"),
    path("<slug:lab_slug>/upload/", views.upload, name="upload"),
    path("<slug:lab_slug>/mine/", views.submissions_partial, name="mine"),
    path("<slug:lab_slug>/leaderboard/", views.leaderboard, name="leaderboard"),
    path("<slug:lab_slug>/submissions/<int:pk>/", views.submission_detail, name="submission"),
    path("<slug:lab_slug>/submissions/<int:pk>/final/", final_views.mark_final, name="mark_final"),
    path("<slug:lab_slug>/final/clear/", final_views.clear_final, name="clear_final"),
    path("<slug:lab_slug>/submissions/<int:pk>/files/<str:name>", views.artifact_file, name="artifact_file"),
    path("<slug:lab_slug>/submissions/<int:pk>/result.json", views.result_file, name="result_file"),
    path("<slug:lab_slug>/staff/regrade/", queue_views.regrade, name="regrade"),
    path("<slug:lab_slug>/staff/release/", views.release, name="release"),
    path("<slug:lab_slug>/staff/withdraw-release/", views.withdraw_release, name="withdraw_release"),
    path("<slug:lab_slug>/staff/freeze/", views.freeze, name="freeze"),
    path("<slug:lab_slug>/staff/base-model/", views.base_model, name="base_model"),
    path("<slug:lab_slug>/entry/", entry_views.entry_page, name="entry"),
    path("<slug:lab_slug>/entry/upload/<str:part>/", entry_views.entry_upload, name="entry_upload"),
    path("<slug:lab_slug>/entries/<int:pk>/files/<str:part>", entry_views.entry_file, name="entry_file"),
    path("<slug:lab_slug>/entries/<int:pk>/notebook/", entry_views.entry_notebook, name="entry_notebook"),
    path("<slug:lab_slug>/staff/entries/", entry_views.staff_entries, name="staff_entries"),
    path("<slug:lab_slug>/staff/entries/<int:pk>/", entry_views.staff_entry, name="staff_entry"),
    path("<slug:lab_slug>/staff/entries/<int:pk>/bundle.zip", entry_views.entry_bundle, name="entry_bundle"),
]
