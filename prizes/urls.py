"""URLs of judging and prizes, under /courses/<course_slug>/prizes/."""

from django.urls import path

from prizes.views import awards, judging, results, rounds

app_name = "prizes"

urlpatterns = [
    path("", judging.judge_home, name="judge_home"),
    path("rounds/<int:pk>/", judging.judge_round, name="judge_round"),
    path("rounds/<int:pk>/conflicts/", judging.declare_conflicts, name="declare_conflicts"),
    path("rounds/<int:pk>/entries/<int:entry_pk>/score/", judging.score, name="score"),
    path("rounds/<int:pk>/now/", judging.now_presenting, name="now_presenting"),
    path("rounds/<int:pk>/entries/<int:entry_pk>/", judging.judge_entry, name="judge_entry"),
    path("rounds/<int:pk>/entries/<int:entry_pk>/notebook/", judging.entry_notebook, name="entry_notebook"),
    path("rounds/<int:pk>/entries/<int:entry_pk>/files/<str:part>", judging.entry_file, name="entry_file"),
    path("staff/", rounds.staff_home, name="staff_home"),
    path("staff/rounds/new/", rounds.round_edit, name="round_new"),
    path("staff/rounds/<int:pk>/edit/", rounds.round_edit, name="round_edit"),
    path("staff/rounds/<int:pk>/", rounds.round_setup, name="round_setup"),
    path("staff/rounds/<int:pk>/control/", rounds.control, name="control"),
    path("staff/rounds/<int:pk>/room/", rounds.room, name="room"),
    path("staff/rounds/<int:pk>/results/", results.results, name="results"),
    path("staff/rounds/<int:pk>/results.csv", results.results_csv, name="results_csv"),
    path("staff/prizes/new/", awards.prize_edit, name="prize_new"),
    path("staff/prizes/<int:pk>/edit/", awards.prize_edit, name="prize_edit"),
    path("staff/prizes/<int:pk>/", awards.prize_detail, name="prize"),
]
