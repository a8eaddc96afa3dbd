"""URLs of judging and prizes, under /courses/<course_slug>/prizes/."""

from django.urls import path

from prizes import views

app_name = "prizes"

urlpatterns = [
    path("", views.judge_home, name="judge_home"),
    path("rounds/<int:pk>/", views.judge_round, name="judge_round"),
    path("rounds/<int:pk>/conflicts/", views.declare_conflicts, name="declare_conflicts"),
    path("rounds/<int:pk>/entries/<int:entry_pk>/score/", views.score, name="score"),
    path("rounds/<int:pk>/now/", views.now_presenting, name="now_presenting"),
    path("rounds/<int:pk>/nominate/", views.nominate, name="nominate"),
    path("staff/", views.staff_home, name="staff_home"),
    path("staff/rounds/new/", views.round_edit, name="round_new"),
    path("staff/rounds/<int:pk>/edit/", views.round_edit, name="round_edit"),
    path("staff/rounds/<int:pk>/", views.round_setup, name="round_setup"),
    path("staff/rounds/<int:pk>/control/", views.control, name="control"),
    path("staff/rounds/<int:pk>/room/", views.room, name="room"),
    path("staff/rounds/<int:pk>/results/", views.results, name="results"),
    path("staff/rounds/<int:pk>/results.csv", views.results_csv, name="results_csv"),
    path("staff/prizes/new/", views.prize_edit, name="prize_new"),
    path("staff/prizes/<int:pk>/edit/", views.prize_edit, name="prize_edit"),
    path("staff/prizes/<int:pk>/", views.prize_detail, name="prize"),
]
