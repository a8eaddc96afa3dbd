"""The public winners page, outside any course's sign-in."""

from django.urls import path

from prizes.views import winners

urlpatterns = [path("", winners.winners, name="prizes_winners")]
