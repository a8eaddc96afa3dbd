"""The public winners pages, outside any course's sign-in: the index of courses and each course's winners."""

from django.urls import path

from prizes.views import winners

urlpatterns = [
    path("", winners.index, name="winners_index"),
    path("<slug:course_slug>/", winners.winners, name="prizes_winners"),
]
