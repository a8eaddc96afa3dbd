"""The public winners page, outside any course's sign-in."""

from django.urls import path

from prizes import views

urlpatterns = [path("", views.winners, name="prizes_winners")]
